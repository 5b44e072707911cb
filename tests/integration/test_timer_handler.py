"""The timer Lambda: SQS batches of worker-ready, grace-expiry and respawn messages."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from handlers import timer, webhook
from tests.localstack import (
    TABLE,
    LambdaContext,
    LocalAws,
    http_api_event,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)


def deliver(aws: LocalAws, body: bytes) -> dict[str, Any]:
    headers = signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    return webhook.handler(http_api_event(body, headers), LambdaContext())


def room_item(aws: LocalAws) -> dict[str, Any]:
    return aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]


def test_worker_ready_creates_exactly_one_dispatch_even_when_redelivered(aws: LocalAws) -> None:
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    worker_registers(aws)
    batch = sqs_event(aws.queue_url)

    first = timer.handler(batch, LambdaContext())
    second = timer.handler(batch, LambdaContext())  # SQS redelivery of the same batch

    assert first == second == {"batchItemFailures": []}
    [dispatch] = aws.livekit.state.list_dispatches("room-1")
    assert dispatch.has_running_job
    assert aws.livekit.requests["CreateDispatch"] == 1
    assert room_item(aws)["state"]["S"] == "active"


def test_poison_message_fails_alone_and_the_rest_of_the_batch_succeeds(aws: LocalAws) -> None:
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    worker_registers(aws)
    aws.client("sqs").send_message(QueueUrl=aws.queue_url, MessageBody='{"kind": "launch_rockets"}')
    batch = sqs_event(aws.queue_url)
    poison = next(r["messageId"] for r in batch["Records"] if "rockets" in r["body"])

    result = timer.handler(batch, LambdaContext())

    assert result == {"batchItemFailures": [{"itemIdentifier": poison}]}
    assert room_item(aws)["state"]["S"] == "active"


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch, aws: LocalAws) -> LocalAws:
    from control_plane import composition

    monkeypatch.setenv("GRACE_PERIOD_SECONDS", "1")
    composition.reset()
    return aws


def test_grace_expiry_message_removes_the_agent(short_grace: LocalAws) -> None:
    aws = short_grace
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    task_arn = worker_registers(aws)
    timer.handler(sqs_event(aws.queue_url), LambdaContext())
    deliver(aws, webhook_body("participant_left", sid="PA_1"))
    assert room_item(aws)["state"]["S"] == "grace"

    time.sleep(1.2)  # SQS DelaySeconds is real time in moto
    batch = sqs_event(aws.queue_url)
    assert [json.loads(r["body"])["kind"] for r in batch["Records"]] == ["grace_expired"]
    timer.handler(batch, LambdaContext())

    assert room_item(aws)["state"]["S"] == "closed"
    assert aws.livekit.state.list_dispatches("room-1") == []
    [task] = aws.client("ecs").describe_tasks(cluster="livekit-agents", tasks=[task_arn])["tasks"]
    assert task["desiredStatus"] == "STOPPED"
