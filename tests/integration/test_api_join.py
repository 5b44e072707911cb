"""POST /rooms/{room}/join through the API handler on moto and the fake LiveKit."""

from __future__ import annotations

import time
from typing import Any

import boto3
import jwt
import pytest

from api import wiring
from control_plane.room import JOIN_RESERVATION_SECONDS
from handlers import timer, webhook
from local.fixtures import (
    LambdaContext,
    http_api_event,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)
from tests.api_harness import ApiCalls, room_path

GRACE, MARGIN = 60, 10
ROOM_LIFETIME = JOIN_RESERVATION_SECONDS + GRACE + MARGIN


def claims(api: ApiCalls, token: str) -> dict[str, Any]:
    livekit = api.aws.livekit
    return jwt.decode(token, livekit.api_secret, algorithms=["HS256"], issuer=livekit.api_key)


def test_join_creates_the_room_returns_a_token_and_launches_the_agent_at_once(api: ApiCalls) -> None:
    answer = api.join("standup", "alice", name="Alice", metadata='{"team": "a"}', attributes={"role": "host"})

    assert answer.status == 200, answer
    body = answer.body
    room = api.aws.livekit.state.get_room("standup")
    assert room is not None and room.departure_timeout == ROOM_LIFETIME, (
        "LiveKit keeps the room past reservation + grace"
    )
    assert body["url"] == api.aws.livekit.url and body["room_sid"] == room.sid
    assert body["agent"]["status"] == "waiting_for_worker" and body["reused"] is False
    [task] = api.tasks()
    assert body["agent"]["task_arn"] == task, "the cold start began before the human connected"


def test_the_token_joins_this_room_only_and_expires_soon(api: ApiCalls) -> None:
    before = int(time.time())
    body = api.join("standup", "alice", name="Alice", attributes={"role": "host"}, ttl_seconds=300).body

    token = claims(api, body["token"])

    assert token["sub"] == "alice" and token["name"] == "Alice" and token["attributes"] == {"role": "host"}
    assert token["video"] == {
        "roomJoin": True,
        "room": "standup",
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": True,
    }, "no admin, create, list, record or agent grant"
    assert before + 300 <= token["exp"] == body["token_expires_at"] <= int(time.time()) + 300
    assert token["roomConfig"]["departureTimeout"] == ROOM_LIFETIME
    assert "agents" not in token["roomConfig"], "agents come only from the control plane"


def test_a_worker_ready_before_the_human_connects_is_dispatched_then_reused(api: ApiCalls) -> None:
    api.join("standup", "alice")
    worker_registers(api.aws, "standup")
    timer.handler(sqs_event(api.aws.queue_url), LambdaContext())
    [dispatch] = api.aws.livekit.state.list_dispatches("standup")

    live = api.aws.livekit.state.get_room("standup")
    assert live is not None
    body = webhook_body("participant_joined", room="standup", room_sid=live.sid, sid="PA_1")
    headers = signed_headers(body, api.aws.livekit.api_key, api.aws.livekit.api_secret)
    assert webhook.handler(http_api_event(body, headers), LambdaContext())["statusCode"] == 200
    again = api.join("standup", "alice")

    assert again.body["reused"] is True
    assert again.body["agent"] == {
        "status": "dispatched",
        "task_arn": api.tasks()[0],
        "dispatch_id": dispatch.dispatch_id,
        "dispatched_at": pytest.approx(time.time(), abs=30),
    }
    assert len(api.tasks()) == 1 and len(api.aws.livekit.state.list_dispatches("standup")) == 1


def test_room_names_are_read_percent_decoded(api: ApiCalls) -> None:
    answer = api.join("café standup", "zoë")

    assert answer.status == 200
    assert answer.body["room"] == "café standup"
    assert api.aws.livekit.state.get_room("café standup") is not None


def _nothing_written(api: ApiCalls, room: str = "standup") -> None:
    assert api.table_items() == []
    assert api.tasks() == []
    assert api.aws.livekit.state.get_room(room) is None


@pytest.mark.parametrize(
    ("room", "body", "field", "reason"),
    [
        ("r" * 257, {"identity": "alice"}, "path.room", "at most 256 UTF-8 bytes"),
        ("é" * 129, {"identity": "alice"}, "path.room", "at most 256 UTF-8 bytes"),
        ("a/b", {"identity": "alice"}, "path.room", "must not contain '/'"),
        ("bell\x07", {"identity": "alice"}, "path.room", "control characters"),
        ("standup", {"identity": ""}, "body.identity", "at least 1 character"),
        ("standup", {"identity": "i" * 257}, "body.identity", "at most 256 UTF-8 bytes"),
        ("standup", {"identity": "tab\there"}, "body.identity", "control characters"),
        ("standup", {"identity": 7}, "body.identity", "valid string"),
        ("standup", {}, "body.identity", "required"),
        ("standup", {"identity": "a", "name": "n" * 257}, "body.name", "at most 256 UTF-8 bytes"),
        (
            "standup",
            {"identity": "a", "metadata": "m" * (512 * 1024 + 1)},
            "body.metadata",
            "524288 UTF-8 bytes",
        ),
        ("standup", {"identity": "a", "attributes": {"k": "v" * 65536}}, "body.attributes", "65536"),
        ("standup", {"identity": "a", "attributes": {"k": 1}}, "body.attributes.k", "valid string"),
        ("standup", {"identity": "a", "ttl_seconds": 59}, "body.ttl_seconds", "greater than or equal to 60"),
        ("standup", {"identity": "a", "ttl_seconds": 3601}, "body.ttl_seconds", "less than or equal to 3600"),
        ("standup", {"identity": "a", "ttl_seconds": "soon"}, "body.ttl_seconds", "valid integer"),
        ("standup", {"identity": "a", "room_admin": True}, "body.room_admin", "not permitted"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    api: ApiCalls, room: str, body: dict[str, Any], field: str, reason: str
) -> None:
    answer = api.post(room_path(room, "join"), body)

    assert answer.status == 422, answer
    assert answer.body["error"] == "request is not valid"
    assert any(f["field"] == field and reason in f["reason"] for f in answer.body["fields"]), answer.body
    _nothing_written(api, room)


def test_a_body_that_is_not_json_is_a_400(api: ApiCalls) -> None:
    answer = api.call("POST", "/rooms/standup/join", raw=b'{"identity": ')

    assert answer.status == 400 and "not valid JSON" in answer.body["error"]
    _nothing_written(api)


def test_livekit_outages_are_retried_after_1_2_and_4_seconds_then_answered_503(
    api: ApiCalls, backoff_sleeps: list[float]
) -> None:
    api.aws.livekit.set_down(True)

    answer = api.join("standup", "alice")

    assert backoff_sleeps == [1.0, 2.0, 4.0]
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert "LiveKit is unavailable" in answer.body["error"]
    _nothing_written(api)


def test_a_livekit_outage_that_ends_during_the_retries_is_invisible(
    api: ApiCalls, backoff_sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import backoff

    def sleep(seconds: float) -> None:
        backoff_sleeps.append(seconds)
        if len(backoff_sleeps) == 2:
            api.aws.livekit.set_down(False)

    monkeypatch.setattr(backoff, "sleep", sleep)
    api.aws.livekit.set_down(True)

    answer = api.join("standup", "alice")

    assert answer.status == 200 and backoff_sleeps == [1.0, 2.0]
    assert len(api.tasks()) == 1


def test_livekit_refusing_our_credentials_is_not_retried(api: ApiCalls, backoff_sleeps: list[float]) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.put_secret_value(
        SecretId=api.aws.env["LIVEKIT_SECRET_ARN"],
        SecretString='{"api_key": "fake-api-key", "api_secret": "not-the-secret"}',
    )

    answer = api.join("standup", "alice")

    assert answer.status == 502 and "LiveKit refused" in answer.body["error"]
    assert backoff_sleeps == [], "a 4xx is final"
    _nothing_written(api)


def test_join_at_max_tasks_with_no_free_slot_is_refused_with_retry_after_and_writes_nothing(
    api: ApiCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from control_plane import composition

    monkeypatch.setenv("MAX_TASKS", "1")
    composition.reset()
    wiring.reset()
    assert api.join("first", "alice").status == 200  # takes the only task the pool may run
    items_before = api.table_items()
    rooms_before = api.aws.livekit.state.list_rooms()

    refused = api.join("second", "bob")

    assert refused.status == 429, refused
    assert refused.headers["Retry-After"] == "30"
    assert "MAX_TASKS" in refused.body["error"]
    assert api.table_items() == items_before, "nothing recorded for the refused room"
    assert api.aws.livekit.state.list_rooms() == rooms_before, "no LiveKit room opened"
    assert len(api.tasks()) == 1
    assert api.join("first", "carol").status == 200, "a room that has its agent is never refused"
