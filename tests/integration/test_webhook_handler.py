"""The webhook Lambda in-process: API Gateway v2 events in, DynamoDB / ECS / LiveKit effects out."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

import botocore.client
import pytest

from control_plane.settings import MAX_WEBHOOK_BYTES
from handlers import timer, webhook
from local.fixtures import (
    TABLE,
    LambdaContext,
    LocalAws,
    http_api_event,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's request payload limit for synchronous invokes


def post(aws: LocalAws, body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    if headers is None:
        headers = signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    return webhook.handler(http_api_event(body, headers, **kwargs), LambdaContext())


def table_items(aws: LocalAws) -> list[dict[str, Any]]:
    return aws.client("dynamodb").scan(TableName=TABLE)["Items"]


def our_tasks(aws: LocalAws) -> list[str]:
    return aws.client("ecs").list_tasks(cluster="livekit-agents", startedBy="livekit-agent-lifecycle")[
        "taskArns"
    ]


def test_signed_join_records_the_room_and_launches_one_task(aws: LocalAws) -> None:
    response = post(aws, webhook_body("participant_joined", sid="PA_1"))

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "applied"}
    [task] = our_tasks(aws)
    room = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]
    assert room["state"]["S"] == "starting"
    assert room["agent"]["M"]["task_arn"]["S"] == task
    assert set(room["humans"]["M"]) == {"PA_1"}


def test_plain_text_body_is_verified_too(aws: LocalAws) -> None:
    response = post(aws, webhook_body("participant_joined", sid="PA_1"), base64_encoded=False)
    assert response["statusCode"] == 200


@pytest.mark.parametrize(
    "forge",
    ["missing", "wrong_secret", "expired", "other_body", "garbage"],
)
def test_unverifiable_webhooks_get_401_and_write_nothing(aws: LocalAws, forge: str) -> None:
    body = webhook_body("participant_joined", sid="PA_1")
    key, secret = aws.livekit.api_key, aws.livekit.api_secret
    headers = {
        "missing": {"content-type": "application/webhook+json"},
        "wrong_secret": signed_headers(body, key, "not-the-secret"),
        "expired": signed_headers(body, key, secret, ttl=timedelta(hours=-1)),
        "other_body": signed_headers(webhook_body("participant_joined", sid="PA_2"), key, secret),
        "garbage": {"authorization": "not-a-jwt"},
    }[forge]

    response = post(aws, body, headers)

    assert response["statusCode"] == 401
    assert table_items(aws) == []
    assert our_tasks(aws) == []


def test_signed_but_malformed_json_gets_400_and_writes_nothing(aws: LocalAws) -> None:
    response = post(aws, b'{"event": "participant_joined", "room": ')

    assert response["statusCode"] == 400
    assert table_items(aws) == []


def json_metadata(size: int) -> str:
    """Metadata as apps write it, JSON: every quote grows to two bytes in the webhook body."""
    return json.dumps(["x"] * (size // 4), separators=(",", ":"))[:size]


def with_metadata(body: bytes, room: str, participant: str, attributes: dict[str, str]) -> bytes:
    payload = json.loads(body)
    payload["room"]["metadata"] = room
    payload["participant"] |= {"metadata": participant, "attributes": attributes}
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("room_metadata", "participant_metadata", "attributes"),
    [
        pytest.param(0, 600 * 1024, 0, id="600-KiB-metadata"),
        # LiveKit's default limits: 512 KiB each for room and participant metadata, 64 KiB of
        # attributes; a participant event carries the room and the participant.
        pytest.param(512 * 1024, 512 * 1024, 64 * 1024, id="largest-at-livekit-default-limits"),
    ],
)
def test_large_signed_webhook_is_accepted(
    aws: LocalAws, room_metadata: int, participant_metadata: int, attributes: int
) -> None:
    body = with_metadata(
        webhook_body("participant_joined", sid="PA_1"),
        room=json_metadata(room_metadata),
        participant=json_metadata(participant_metadata),
        attributes={"notes": "a" * attributes} if attributes else {},
    )
    assert participant_metadata < len(body) <= MAX_WEBHOOK_BYTES

    response = post(aws, body)

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "applied"}
    assert len(our_tasks(aws)) == 1


def test_oversized_body_gets_413_and_writes_nothing(aws: LocalAws) -> None:
    body = with_metadata(
        webhook_body("participant_joined", sid="PA_1"),
        room="",
        participant="x" * MAX_WEBHOOK_BYTES,
        attributes={},
    )
    response = post(aws, body)

    assert response["statusCode"] == 413
    assert table_items(aws) == []
    assert our_tasks(aws) == []


def test_a_body_at_the_cap_fits_the_lambda_payload_api_gateway_sends() -> None:
    """API Gateway base64-encodes the body (4/3) into the event; Lambda takes at most 6 MB."""
    body = b"x" * MAX_WEBHOOK_BYTES
    event = http_api_event(body, signed_headers(body, "key", "secret" * 6))
    assert len(json.dumps(event).encode()) < LAMBDA_SYNC_PAYLOAD_BYTES


def test_unknown_event_type_is_accepted_and_ignored(aws: LocalAws, caplog: pytest.LogCaptureFixture) -> None:
    response = post(aws, webhook_body("track_published", sid="PA_1"))

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "ignored"}
    assert table_items(aws) == []
    assert any(r.getMessage() == "webhook ignored" and r.event == "track_published" for r in caplog.records)


def test_duplicate_delivery_has_no_second_effect(aws: LocalAws) -> None:
    body = webhook_body("participant_joined", sid="PA_1", event_id="EV_same")
    first = post(aws, body)
    room_before = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]

    second = post(aws, body)

    assert first["statusCode"] == second["statusCode"] == 200
    assert json.loads(second["body"]) == {"outcome": "duplicate"}
    assert len(our_tasks(aws)) == 1
    room_after = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]
    assert room_after == room_before


def emitted_metrics(out: str) -> dict[str, Any]:
    """Metric values from the CloudWatch EMF lines Powertools printed."""
    values: dict[str, Any] = {}
    for line in out.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values[definition["Name"]] = document[definition["Name"]]
    return values


def test_short_departure_timeout_is_warned_and_counted(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    response = post(aws, webhook_body("room_started", departure_timeout=20))

    assert response["statusCode"] == 200
    assert any("departure_timeout shorter than grace period" in r.getMessage() for r in caplog.records)
    assert emitted_metrics(capsys.readouterr().out)["ShortDepartureTimeoutRooms"] == [1.0]


def test_room_started_with_enough_departure_timeout_is_quiet(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    post(aws, webhook_body("room_started", departure_timeout=70))
    assert "ShortDepartureTimeoutRooms" not in capsys.readouterr().out


def test_a_failed_attempt_is_processed_when_livekit_retries(aws: LocalAws) -> None:
    """The dedupe record is released when processing fails, so LiveKit's retry is not dropped.
    The room's agent is dispatched, so its removal must delete that dispatch: a LiveKit call."""
    body = webhook_body("room_finished", event_id="EV_retry")
    aws.livekit.state.open_room("room-1")
    post(aws, webhook_body("participant_joined", sid="PA_1"))
    worker_registers(aws)
    timer.handler(sqs_event(aws.queue_url), LambdaContext())  # the ready message: the dispatch
    aws.livekit.set_down(True)
    room = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]
    assert room["state"]["S"] == "active"

    failed = post(aws, body)
    aws.livekit.set_down(False)
    retried = post(aws, body)

    assert failed["statusCode"] == 503
    assert retried["statusCode"] == 200
    assert json.loads(retried["body"]) == {"outcome": "applied"}
    stopped = aws.client("ecs").describe_tasks(cluster="livekit-agents", tasks=our_tasks(aws) or ["none"])
    assert all(t["desiredStatus"] == "STOPPED" for t in stopped["tasks"])
    room = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]
    assert room["state"]["S"] == "closed"
    assert aws.livekit.state.list_dispatches("room-1") == []


def test_retried_leave_sends_one_grace_timer(aws: LocalAws) -> None:
    post(aws, webhook_body("participant_joined", sid="PA_1"))
    leave = webhook_body("participant_left", sid="PA_1", event_id="EV_leave")

    post(aws, leave)
    post(aws, leave)
    post(aws, webhook_body("participant_left", sid="PA_1"))  # same leave, new id: observation is idempotent

    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) == 1
    assert len(our_tasks(aws)) == 1


def rotate_livekit_secret(aws: LocalAws) -> str:
    """Put a new secret value in Secrets Manager, as a rotation does; returns the new secret."""
    new_secret = f"rotated-{secrets.token_urlsafe(32)}"
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.env["LIVEKIT_SECRET_ARN"],
        SecretString=json.dumps({"api_key": aws.livekit.api_key, "api_secret": new_secret}),
    )
    return new_secret


def count_secret_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        if operation == "GetSecretValue":
            reads.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return reads


def test_webhook_signed_with_a_rotated_secret_is_accepted_at_once(
    aws: LocalAws, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(aws, webhook_body("participant_joined", sid="PA_1"))["statusCode"] == 200  # secret cached
    new_secret = rotate_livekit_secret(aws)
    body = webhook_body("participant_joined", sid="PA_2")

    response = post(aws, body, signed_headers(body, aws.livekit.api_key, new_secret))

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "applied"}
    room = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]
    assert set(room["humans"]["M"]) == {"PA_1", "PA_2"}
    output = capsys.readouterr()
    for secret in (new_secret, aws.livekit.api_secret):
        assert secret not in caplog.text + output.out + output.err


def test_a_webhook_signed_with_the_agents_own_livekit_key_is_refused(aws: LocalAws) -> None:
    """The agent tasks hold a key of their own (``AgentLiveKitSecretArn``), another key of the
    same LiveKit project: a compromised agent signing a webhook with it gets a 401."""
    before = table_items(aws)
    body = webhook_body("participant_joined", sid="PA_1")
    agent_key, agent_secret = "APIagentownkey", secrets.token_urlsafe(32)

    response = post(aws, body, signed_headers(body, agent_key, agent_secret))

    assert response["statusCode"] == 401
    assert table_items(aws) == before and our_tasks(aws) == []


def test_forged_webhooks_re_read_the_secret_at_most_once_per_interval(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert post(aws, webhook_body("participant_joined", sid="PA_1"))["statusCode"] == 200
    before = table_items(aws)
    reads = count_secret_reads(monkeypatch)
    key = aws.livekit.api_key

    unsigned = post(aws, webhook_body("participant_joined", sid="PA_0"), {"content-type": "x"})
    forged = []
    for index in range(5):
        body = webhook_body("participant_joined", sid=f"PA_forged_{index}")
        forged.append(
            post(aws, body, signed_headers(body, key, "not-the-secret-not-the-secret"))["statusCode"]
        )

    assert unsigned["statusCode"] == 401
    assert forged == [401] * 5
    assert reads == ["GetSecretValue"], "one forced re-read, however many forgeries"
    assert table_items(aws) == before
    assert len(our_tasks(aws)) == 1
