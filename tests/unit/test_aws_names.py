"""Every room name LiveKit accepts fits every place it reaches AWS, checked against the
constraints in botocore's own service models (loaded here, never copied)."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.aws_names import (
    DYNAMODB_PARTITION_KEY_MAX_BYTES,
    HASH_MARK,
    STOP_REASON_MAX_BYTES,
    bounded_text,
    decode_room_tag,
    encode_room_tag,
    room_key,
    sqs_safe_json,
)
from control_plane.reconcile import launch_token
from control_plane.room import Room
from control_plane.settings import TASK_STARTED_BY
from control_plane.worker_protocol import ROOM_PK_PREFIX, TIMER_MESSAGE, GraceExpired
from tests.aws_models import (
    RUN_TASK,
    SQS_BODY_RANGES,
    TAG_VALUE,
    TAG_VALUE_PATTERN,
    any_text,
    documented,
    is_valid_sqs_body,
    livekit_room_names,
    with_nasty_names,
)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# --- ECS tag value ----------------------------------------------------------------------


def test_every_character_kept_as_itself_is_one_ecs_allows_in_a_tag_value() -> None:
    kept_but_refused = [
        f"U+{point:04X}"
        for point in range(0x110000)
        if not TAG_VALUE_PATTERN.fullmatch(chr(point)) and encode_room_tag(chr(point)) == chr(point)
    ]

    assert kept_but_refused == []


@given(any_text)
@with_nasty_names()
def test_any_room_name_encodes_to_a_tag_value_ecs_accepts(name: str) -> None:
    value = encode_room_tag(name)

    assert TAG_VALUE_PATTERN.fullmatch(value)
    assert len(value.encode("utf-8")) <= TAG_VALUE.metadata["max"]
    assert not unicodedata.normalize("NFKC", value[:4]).casefold().startswith("aws:")


@given(any_text)
@with_nasty_names()
def test_a_tag_value_decodes_back_to_its_room_name_unless_it_had_to_be_hashed(name: str) -> None:
    value = encode_room_tag(name)

    assert decode_room_tag(value) == (None if HASH_MARK in value else name)


@pytest.mark.parametrize(
    "name", ["room-1", "standup", "Besprechung 3", "会議室", "user@example.com/call:1+2", "x" * 256]
)
def test_ordinary_names_read_as_themselves(name: str) -> None:
    assert encode_room_tag(name) == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Alice's room #1", "Alice=27s room =231"),
        ("a=b", "a=3Db"),
        ("aws:room", "aws=3Aroom"),
        ("AwS:room", "AwS=3Aroom"),
        ("😀", "=F0=9F=98=80"),
    ],
)
def test_refused_characters_and_the_reserved_prefix_are_escaped_as_utf8_bytes(name: str, value: str) -> None:
    assert encode_room_tag(name) == value


def test_a_name_too_long_to_escape_keeps_a_readable_prefix_and_a_distinct_hash() -> None:
    first, second = "Alice's room " + "#" * 240 + "1", "Alice's room " + "#" * 240 + "2"

    tags = encode_room_tag(first), encode_room_tag(second)

    assert tags[0] != tags[1]
    assert all(tag.startswith("Alice=27s room =23") and HASH_MARK in tag for tag in tags)
    assert all(len(tag.encode()) <= TAG_VALUE.metadata["max"] for tag in tags)
    assert decode_room_tag(tags[0]) is None


@pytest.mark.parametrize("value", ["=", "=4", "=zz", "=C3", "a=b"])
def test_a_malformed_tag_value_decodes_to_nothing(value: str) -> None:
    assert decode_room_tag(value) is None


# --- RunTask clientToken and startedBy ----------------------------------------------------


@given(livekit_room_names, st.text(max_size=40), st.integers(min_value=0, max_value=10**9))
@with_nasty_names("RM_1", 1)
def test_launch_tokens_are_client_tokens_ecs_accepts(name: str, sid: str, number: int) -> None:
    documentation = RUN_TASK["clientToken"].documentation
    most = int(documented(r"Up to (\d+) characters are allowed", documentation)[1])
    low, high = map(int, documented(r"characters in the range of (\d+)-(\d+)", documentation).groups())

    token = launch_token(Room(name=name, sid=sid), number)

    assert len(token) <= most
    assert all(low <= ord(char) <= high for char in token)


def test_started_by_is_a_value_ecs_accepts() -> None:
    documentation = RUN_TASK["startedBy"].documentation
    most = documented(
        r"Up to (\d+) letters \(uppercase and lowercase\), numbers, hyphens \(-\), forward slash \(/\), "
        r"and underscores \(_\) are allowed",
        documentation,
    )[1]

    assert re.fullmatch(rf"[A-Za-z0-9\-/_]{{1,{most}}}", TASK_STARTED_BY)


# --- StopTask reason, DynamoDB key, SQS body -----------------------------------------------


@given(any_text)
@with_nasty_names()
def test_a_stop_reason_naming_any_room_is_bounded_unicode(name: str) -> None:
    reason = bounded_text(f"room {name} closed", STOP_REASON_MAX_BYTES)

    assert len(reason.encode("utf-8")) <= STOP_REASON_MAX_BYTES
    assert is_valid_sqs_body(reason)  # the XML character set, accepted by every AWS API


def test_a_short_clean_stop_reason_is_kept_as_it_is() -> None:
    assert bounded_text("room standup closed", STOP_REASON_MAX_BYTES) == "room standup closed"


@given(livekit_room_names)
@with_nasty_names()
def test_any_livekit_room_name_fits_a_dynamodb_partition_key(name: str) -> None:
    assert len(f"{ROOM_PK_PREFIX}{name}".encode()) <= DYNAMODB_PARTITION_KEY_MAX_BYTES


@given(any_text)
@with_nasty_names()
def test_a_timer_naming_any_valid_room_is_a_valid_sqs_body_and_reads_back(name: str) -> None:
    message = GraceExpired(room=name, generation=3)
    if _has_lone_surrogate(name):
        with pytest.raises(ValueError, match="not valid Unicode"):
            sqs_safe_json(message.model_dump(mode="json"))
        return

    body = sqs_safe_json(message.model_dump(mode="json"))

    assert is_valid_sqs_body(body)
    assert TIMER_MESSAGE.validate_json(body) == message
    assert json.loads(body)["room"] == name


def test_the_sqs_ranges_were_read_from_botocore() -> None:
    assert (0x20, 0xD7FF) in SQS_BODY_RANGES
    assert not is_valid_sqs_body("\x00") and not is_valid_sqs_body("\uffff")


@given(livekit_room_names | st.text(min_size=1, max_size=3000))
def test_any_room_name_has_a_dynamodb_key_within_the_partition_key_limit(name: str) -> None:
    key = room_key(name)
    assert len(key.encode("utf-8", "surrogatepass")) <= DYNAMODB_PARTITION_KEY_MAX_BYTES
    assert key.startswith(ROOM_PK_PREFIX)


def test_long_room_names_get_distinct_keys_and_short_ones_read_as_themselves() -> None:
    assert room_key("standup") == ROOM_PK_PREFIX + "standup"
    long_a, long_b = "r" * 3000, "r" * 2999 + "s"
    assert room_key(long_a) != room_key(long_b)
    assert room_key(long_a).startswith(ROOM_PK_PREFIX + "r" * 100)
