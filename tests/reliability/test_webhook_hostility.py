"""Hostile and broken requests at the real webhook Lambda (moto): a clear 4xx, and not one write.

Every case compares a scan of the whole table and the list of our ECS tasks before and after.
Then Hypothesis throws random bodies and headers at the endpoint: the answer is 2xx or 4xx,
never 5xx (a 5xx makes LiveKit retry for 30 s), and a rejected request writes nothing. Finally
any room name LiveKit accepts (up to its 256-byte limit) must launch its agent, with RunTask's
parameters held to the patterns of botocore's own ECS model.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.api import AccessToken

from control_plane.settings import MAX_WEBHOOK_BYTES
from local.fixtures import LambdaContext, LocalAws, http_api_event, signed_headers, webhook_body
from tests.reliability.faults import AwsFaults
from tests.reliability.invariants import holds, no_write, running_tasks_by_room, table_items
from tests.reliability.lambdas import invoke, livekit_body, outcome, status
from tests.reliability.report import Figures

ROOM = "room-1"
Request = tuple[bytes, dict[str, str]]


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch, aws: LocalAws) -> AwsFaults:
    """RunTask held to the ECS model's patterns, as ECS itself would hold it."""
    aws_faults = AwsFaults(monkeypatch)
    aws_faults.enforce_model_patterns("ecs.RunTask")
    return aws_faults


def send(body: bytes, headers: dict[str, str], base64_encoded: bool = True) -> dict[str, Any]:
    event = http_api_event(body, headers, base64_encoded=base64_encoded)
    return invoke({"handler": "webhook", "event": event}, LambdaContext())


def join_body(**kwargs: Any) -> bytes:
    return webhook_body("participant_joined", sid="PA_1", **kwargs)


def token(aws: LocalAws, body: bytes, **kwargs: Any) -> str:
    return signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret, **kwargs)["authorization"]


def headers_with(authorization: str) -> dict[str, str]:
    return {"authorization": authorization, "content-type": "application/webhook+json"}


def nested(depth: int) -> bytes:
    payload = json.loads(join_body())
    return json.dumps(payload)[:-1].encode() + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


def forged(aws: LocalAws) -> Request:
    body = join_body()
    return body, signed_headers(body, aws.livekit.api_key, "not-" + aws.livekit.api_secret)


def wrong_key(aws: LocalAws) -> Request:
    body = join_body()
    return body, signed_headers(body, "another-api-key", aws.livekit.api_secret)


def expired(aws: LocalAws) -> Request:
    body = join_body()
    return body, headers_with(token(aws, body, ttl=timedelta(hours=-1)))


def tampered(aws: LocalAws) -> Request:
    body = join_body()
    return body.replace(b"PA_1", b"PA_2"), headers_with(token(aws, body))


def missing(aws: LocalAws) -> Request:
    return join_body(), {"content-type": "application/webhook+json"}


def bearer(aws: LocalAws) -> Request:
    body = join_body()
    return body, headers_with("Bearer " + token(aws, body))


def no_body_hash(aws: LocalAws) -> Request:
    return join_body(), headers_with(AccessToken(aws.livekit.api_key, aws.livekit.api_secret).to_jwt())


def unsigned(aws: LocalAws) -> Request:
    body = join_body()
    digest = base64.b64encode(__import__("hashlib").sha256(body).digest()).decode()
    claims = {"iss": aws.livekit.api_key, "sha256": digest, "exp": 4_000_000_000}
    return body, headers_with(jwt.encode(claims, key=None, algorithm="none"))


def signed(body: bytes) -> Callable[[LocalAws], Request]:
    return lambda aws: (body, signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret))


def oversized(aws: LocalAws) -> Request:
    payload = json.loads(join_body())
    payload["participant"]["metadata"] = "x" * MAX_WEBHOOK_BYTES
    return signed(json.dumps(payload).encode())(aws)


HOSTILE: dict[str, tuple[Callable[[LocalAws], Request], int]] = {
    "forged (another secret)": (forged, 401),
    "wrong API key": (wrong_key, 401),
    "expired token": (expired, 401),
    "body tampered after signing": (tampered, 401),
    "missing Authorization header": (missing, 401),
    "'Bearer ' prefix (LiveKit sends none)": (bearer, 401),
    "token without the body hash": (no_body_hash, 401),
    "unsigned token (alg none)": (unsigned, 401),
    "oversized body": (oversized, 413),
    "invalid JSON, signed": (signed(b'{"event": "participant_joined", "room": '), 400),
    "deeply nested JSON, signed": (signed(nested(100_000)), 400),
    "not UTF-8, signed": (signed(b'{"event": "\xff\xfe"}'), 401),
    "no event id, signed": (signed(json.dumps({"event": "room_started"}).encode()), 400),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_webhook_gets_a_clear_4xx_and_writes_nothing(
    aws: LocalAws, case: str, figures: Figures
) -> None:
    make, expected = HOSTILE[case]
    body, headers = make(aws)
    before, tasks = table_items(aws), running_tasks_by_room(aws)

    response = send(body, headers)

    figures.record(f"webhook: {case}", f"{expected}, no write", faults=1)
    assert status(response) == expected, response
    holds(no_write(case, before, table_items(aws)))
    assert running_tasks_by_room(aws) == tasks


def test_invalid_base64_gets_400_and_writes_nothing(aws: LocalAws, figures: Figures) -> None:
    event = http_api_event(b"", headers_with("x"))
    event["body"] = "not base64 at all!"
    before = table_items(aws)

    response = invoke({"handler": "webhook", "event": event}, LambdaContext())

    figures.record("webhook: body not valid base64", "400, no write", faults=1)
    assert status(response) == 400, response
    holds(no_write("invalid base64", before, table_items(aws)))


def test_a_replayed_webhook_is_a_duplicate_and_writes_nothing(aws: LocalAws, figures: Figures) -> None:
    live = aws.livekit.state.open_room(ROOM, departure_timeout=70)
    aws.livekit.state.add_participant(ROOM, "PA_1", "alice")
    body = livekit_body("participant_joined", live, sid="PA_1")
    headers = signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    assert outcome(send(body, headers)) == "applied"
    before, tasks = table_items(aws), running_tasks_by_room(aws)

    replays = [send(body, headers) for _ in range(3)]

    figures.record(
        "webhook: the same request replayed 3 times", "200 duplicate, no write", replayed=3, faults=3
    )
    assert [(status(r), outcome(r)) for r in replays] == [(200, "duplicate")] * 3
    holds(no_write("a replayed webhook", before, table_items(aws)))
    assert running_tasks_by_room(aws) == tasks


def test_an_old_sessions_event_replayed_after_a_new_session_changes_no_room(
    aws: LocalAws, figures: Figures
) -> None:
    first = aws.livekit.state.open_room(ROOM, departure_timeout=70)
    aws.livekit.state.add_participant(ROOM, "PA_1", "alice")
    old_join = livekit_body("participant_joined", first, sid="PA_1")
    assert outcome(send(*signed(old_join)(aws))) == "applied"
    aws.livekit.state.close_room(ROOM)
    aws.livekit.state.open_room(ROOM, departure_timeout=70)
    second = aws.livekit.state.get_room(ROOM)
    assert second is not None and second.sid != first.sid and second.created_at > first.created_at
    aws.livekit.state.add_participant(ROOM, "PA_2", "bob")
    assert (
        outcome(send(*signed(livekit_body("participant_joined", second, sid="PA_2", identity="bob"))(aws)))
        == "applied"
    )
    rooms_before = [i for i in table_items(aws) if i["pk"]["S"].startswith("ROOM#")]
    tasks = running_tasks_by_room(aws)

    late = [
        livekit_body("participant_left", first, sid="PA_1"),
        livekit_body("room_started", first),
        livekit_body("participant_joined", first, sid="PA_3", identity="carol"),
    ]
    answers = [send(*signed(body)(aws)) for body in late]

    figures.record(
        "webhook: an old session's events after a new one", "200 stale_session, room unchanged", replayed=3
    )
    assert [(status(a), outcome(a)) for a in answers] == [(200, "stale_session")] * 3
    rooms_after = [i for i in table_items(aws) if i["pk"]["S"].startswith("ROOM#")]
    holds(no_write("an old session's event", rooms_before, rooms_after))
    assert running_tasks_by_room(aws) == tasks


def test_a_signed_event_for_a_room_name_past_every_aws_key_limit_is_not_a_5xx(
    aws: LocalAws, figures: Figures
) -> None:
    """LiveKit's room-name limit is configurable (0 turns it off); such a name must get a clear
    answer, never a 5xx that LiveKit retries for 30 s."""
    body = webhook_body("participant_joined", room="r" * 3000, sid="PA_1")

    response = send(*signed(body)(aws))

    figures.record("webhook: signed event, 3000-byte room name", "2xx or 4xx, never 5xx", faults=1)
    assert status(response) < 500, response


# --- fuzz ---------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
LIFECYCLE_EVENTS = ["participant_joined", "participant_left", "participant_connection_aborted"]
kinds = st.sampled_from([*LIFECYCLE_EVENTS, "room_started", "room_finished", "track_published", "", "x"])
ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=20)
int64 = st.integers(min_value=0, max_value=2**62).map(str)


def event_strategy(anything: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """LiveKit-shaped events; ``anything`` fills fields with odd values in the broken variant."""
    room = st.fixed_dictionaries(
        {"sid": st.sampled_from(["RM_1", "RM_2"]), "name": st.sampled_from(["room-1", "room-2"])},
        optional={"creationTime": int64 | anything, "metadata": st.text(max_size=60)},
    )
    participant = st.fixed_dictionaries(
        {"sid": st.sampled_from(["PA_1", "PA_2", "PA_3"])},
        optional={
            "identity": st.text(max_size=20),
            "kind": st.sampled_from(["STANDARD", "SIP", "AGENT", "EGRESS", "INGRESS"]) | anything,
            "metadata": st.text(max_size=60),
        },
    )
    return st.fixed_dictionaries(
        {
            "event": kinds,
            "id": st.uuids().map(str) | ids,
            "room": room | anything,
            "participant": participant,
        },
        optional={"createdAt": int64 | anything},
    )


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda value: json.dumps(value).encode())


bodies = st.one_of(
    encoded(event_strategy(st.nothing())),
    encoded(event_strategy(json_values)),
    encoded(json_values),
    st.binary(max_size=300),
)
auth_modes = st.sampled_from(
    ["signed", "none", "garbage", "signed for another body", "wrong secret", "bearer"]
)


def authorization(aws: LocalAws, body: bytes, mode: str) -> dict[str, str]:
    key, secret = aws.livekit.api_key, aws.livekit.api_secret
    if mode == "none":
        return {}
    if mode == "garbage":
        return {"authorization": "eyJ.not.a.jwt"}
    signed_for = body + b" " if mode == "signed for another body" else body
    headers = signed_headers(signed_for, key, "wrong" if mode == "wrong secret" else secret)
    if mode == "bearer":
        headers["authorization"] = "Bearer " + headers["authorization"]
    return headers


FUZZ = {"requests": 0, "accepted": 0, "rejected": 0}


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, mode=auth_modes, base64_encoded=st.booleans())
def test_fuzzed_requests_get_only_2xx_or_4xx_and_a_rejection_never_writes(
    aws: LocalAws, figures: Figures, body: bytes, mode: str, base64_encoded: bool
) -> None:
    headers = authorization(aws, body, mode)
    if not base64_encoded:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            base64_encoded = True  # API Gateway base64-encodes what is not text
    before, tasks = table_items(aws), running_tasks_by_room(aws)

    response = send(body, headers, base64_encoded=base64_encoded)

    FUZZ["requests"] += 1
    accepted = 200 <= status(response) < 300
    FUZZ["accepted" if accepted else "rejected"] += 1
    figures.record(
        "webhook fuzz: random bodies and headers",
        "only 2xx/4xx; a rejection writes nothing",
        faults=FUZZ["requests"],
        accepted=FUZZ["accepted"],
        rejected=FUZZ["rejected"],
    )
    assert status(response) < 500, (mode, body[:200], response)
    if not accepted:
        holds(no_write(f"a {status(response)} for {body[:60]!r}", before, table_items(aws)))
        assert running_tasks_by_room(aws) == tasks


NAMES = {"launched": 0}
room_names = st.one_of(
    st.sampled_from(
        [
            "Alice's room #1",
            "🎉 party",
            "a?b&c,d(e)",
            "aws:room",
            "AWS:x",
            "\uff21\uff37\uff33:wide",
            "%41",
            "=3D",
        ]
    ),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40),
).filter(lambda name: len(name.encode()) <= 256)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=room_names)
def test_any_room_name_livekit_accepts_gets_its_agent(
    aws: LocalAws, faults: AwsFaults, figures: Figures, name: str
) -> None:
    live = aws.livekit.state.open_room(name, departure_timeout=70)
    sid = f"PA_{NAMES['launched']}"
    aws.livekit.state.add_participant(name, sid, "alice")

    response = send(*signed(livekit_body("participant_joined", live, sid=sid))(aws))

    NAMES["launched"] += 1
    figures.record(
        "any room name LiveKit accepts (ECS model patterns enforced)",
        "200 and 1 task per room",
        names=NAMES["launched"],
        refused_by_ecs=faults.injected["ecs.RunTask refused"],
    )
    assert status(response) == 200 and outcome(response) in ("applied", "duplicate"), response
    assert faults.injected["ecs.RunTask refused"] == 0, f"ECS would refuse RunTask for room {name!r}"
    assert len(running_tasks_by_room(aws).get(name, [])) == 1, f"room {name!r} has no agent task"
