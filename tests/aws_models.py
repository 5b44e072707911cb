"""AWS's own constraints, read from botocore's service models, and the room names that test them.

Shared by the unit tests of ``aws_names`` and the runner and timers contract suites.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import botocore.session
import regex
from hypothesis import example
from hypothesis import strategies as st

from control_plane.aws_names import LIVEKIT_MAX_ROOM_NAME_BYTES

_SESSION = botocore.session.get_session()
ECS = _SESSION.get_service_model("ecs")
SQS = _SESSION.get_service_model("sqs")
TAG_VALUE = ECS.shape_for("TagValue")
TAG_VALUE_PATTERN = regex.compile(TAG_VALUE.metadata["pattern"])
RUN_TASK = ECS.operation_model("RunTask").input_shape.members

NASTY_ROOM_NAMES = [
    "Alice's room #1",
    "🎉 party 😀",
    "what?",
    "fish & chips",
    "a,b",
    "(room)",
    "aws:room",
    "AWS:Room",
    "\uff41\uff57\uff53:fullwidth",
    "aw\u017f:long s",
    "=3D",
    "=_",
    "100%",
    "a\x00b",
    "tab\tnew\nline\r",
    "\ufffe\uffff",
    "\u2028\u2029",
    "\u200b zero width",
    "🏳️‍🌈 family 👨‍👩‍👧",
    '<script>"quoted"</script>',
    "back\\slash",
    "会議室",
    "",
    "#" * LIVEKIT_MAX_ROOM_NAME_BYTES,
    "é" * (LIVEKIT_MAX_ROOM_NAME_BYTES // 2),
    "x" * LIVEKIT_MAX_ROOM_NAME_BYTES,
    "\x01" * LIVEKIT_MAX_ROOM_NAME_BYTES,  # the longest once JSON-escaped: six characters a byte
]

# Any Python string, lone surrogates included: what the encoders must survive.
any_text = st.text(st.characters(exclude_categories=[]) | st.characters(categories=["Cs"]), max_size=400)
# What LiveKit accepts: valid Unicode, at most LIVEKIT_MAX_ROOM_NAME_BYTES of UTF-8.
livekit_room_names = st.text(max_size=LIVEKIT_MAX_ROOM_NAME_BYTES).map(
    lambda name: name.encode()[:LIVEKIT_MAX_ROOM_NAME_BYTES].decode("utf-8", "ignore")
)


def with_nasty_names(*other_arguments: object) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis examples for every nasty name (plus fixed values for the other arguments)."""

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for name in NASTY_ROOM_NAMES:
            test = example(name, *other_arguments)(test)
        return test

    return decorate


def documented(pattern: str, documentation: str) -> re.Match[str]:
    """A limit botocore's model states only in prose; fails loudly if the prose changes."""
    found = re.search(pattern, documentation)
    assert found is not None, f"botocore's documentation no longer says {pattern!r}"
    return found


def _sqs_body_ranges() -> list[tuple[int, int]]:
    """The characters SendMessage's MessageBody documentation allows, as code point ranges."""
    documentation = SQS.operation_model("SendMessage").input_shape.members["MessageBody"].documentation
    ranges = re.findall(r"<code>#x([0-9A-F]+)</code>(?: to <code>#x([0-9A-F]+)</code>)?", documentation)
    assert len(ranges) >= 5, "the allowed characters are no longer listed in botocore's model"
    return [(int(low, 16), int(high or low, 16)) for low, high in ranges]


SQS_BODY_RANGES = _sqs_body_ranges()


def is_valid_sqs_body(body: str) -> bool:
    return all(any(low <= ord(char) <= high for low, high in SQS_BODY_RANGES) for char in body)
