"""The timer Lambda: SQS batches of worker-ready, job-ended, grace-expiry and respawn messages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from control_plane.worker_protocol import (
    GraceExpired,
    JobEnded,
    JobFailureReason,
    JobOutcome,
    sender_may_send,
)
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
from tests.infra import cfn


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
    assert sqs_event(aws.queue_url)["Records"] == [], "a failed record waits out its visibility timeout"


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


@dataclass
class RunningDownContext(LambdaContext):
    """A Lambda context whose remaining time starts at ``remaining_ms`` and runs down in real time."""

    remaining_ms: int = 30_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms - int((time.monotonic() - self.started) * 1000)


LIVEKIT_LATENCY_SECONDS = 1.5


@pytest.fixture
def slow_livekit(aws: LocalAws) -> Iterator[LocalAws]:
    """LiveKit answering every call late: degraded, not down."""
    aws.livekit.latency = LIVEKIT_LATENCY_SECONDS
    timer.queue_visibility.cache_clear()  # its client and queue belong to this test's moto
    yield aws
    timer.queue_visibility.cache_clear()


def test_records_without_time_left_fail_at_once_and_are_visible_again(slow_livekit: LocalAws) -> None:
    aws = slow_livekit
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    worker_registers(aws)  # a worker_ready message: its reconcile creates a dispatch
    for room in ("room-2", "room-3", "room-4"):
        aws.client("sqs").send_message(
            QueueUrl=aws.queue_url, MessageBody=GraceExpired(room=room, generation=1).model_dump_json()
        )
    batch = sqs_event(aws.queue_url)
    first, *rest = batch["Records"]
    assert json.loads(first["body"])["kind"] == "worker_ready" and len(rest) == 3
    # Time for the first record; its LiveKit call (CreateDispatch, 1.5 s) leaves less than a
    # budget for the next.
    context = RunningDownContext(remaining_ms=timer.RECORD_BUDGET_MS + 1_000)

    result = timer.handler(batch, context)

    deferred = [record["messageId"] for record in rest]
    assert result == {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in deferred]}
    assert aws.livekit.requests["CreateDispatch"] == 1
    assert room_item(aws)["state"]["S"] == "active"
    again = sqs_event(aws.queue_url)  # before any visibility timeout ran out
    assert sorted(record["messageId"] for record in again["Records"]) == sorted(deferred)


def test_an_invocation_always_has_time_for_its_first_record() -> None:
    """The budget is below the function's timeout, or nothing would ever be processed."""
    [function] = [f for f in cfn.functions().values() if f.module == "timer"]
    assert function.properties["Timeout"] * 1000 > timer.RECORD_BUDGET_MS


ROLE_ID = "AROAEXAMPLEAGENTROLE"


@pytest.fixture
def agent_role(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """The deployed setting: worker items keyed, and queue senders checked, by the task role."""
    from control_plane import composition

    monkeypatch.setenv("AGENT_TASK_ROLE_ID", ROLE_ID)
    composition.reset()
    return aws


def test_a_worker_ready_message_is_believed_only_from_the_task_it_names(agent_role: LocalAws) -> None:
    aws = agent_role
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    task_arn = worker_registers(aws, task_role_id=ROLE_ID)
    forged = sqs_event(aws.queue_url, sender_id=f"{ROLE_ID}:someothertaskid")

    assert timer.handler(forged, LambdaContext()) == {"batchItemFailures": []}, "dropped, not retried"
    assert aws.livekit.state.list_dispatches("room-1") == []

    worker_registers(aws, task_role_id=ROLE_ID)
    own = sqs_event(aws.queue_url, sender_id=f"{ROLE_ID}:{task_arn.rsplit('/', 1)[-1]}")
    timer.handler(own, LambdaContext())
    assert len(aws.livekit.state.list_dispatches("room-1")) == 1


def test_a_grace_timer_sent_by_an_agent_task_is_dropped(agent_role: LocalAws) -> None:
    aws = agent_role
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    before = room_item(aws)
    aws.client("sqs").send_message(
        QueueUrl=aws.queue_url, MessageBody=GraceExpired(room="room-1", generation=1).model_dump_json()
    )

    timer.handler(sqs_event(aws.queue_url, sender_id=f"{ROLE_ID}:abc"), LambdaContext())

    assert room_item(aws) == before


def job_failed(aws: LocalAws, task_arn: str) -> None:
    report = JobEnded(
        task_arn=task_arn,
        room="room-1",
        job_id="AJ_1",
        outcome=JobOutcome.FAILURE,
        reason=JobFailureReason.ENTRYPOINT_ERROR,
        exception_type="ValueError",
        duration_seconds=0.5,
    )
    aws.client("sqs").send_message(QueueUrl=aws.queue_url, MessageBody=report.model_dump_json())


def test_a_job_ended_message_is_believed_only_from_the_task_it_names(agent_role: LocalAws) -> None:
    aws = agent_role
    aws.livekit.state.open_room("room-1")
    deliver(aws, webhook_body("participant_joined", sid="PA_1"))
    task_arn = worker_registers(aws, task_role_id=ROLE_ID)
    timer.handler(
        sqs_event(aws.queue_url, sender_id=f"{ROLE_ID}:{task_arn.rsplit('/', 1)[-1]}"), LambdaContext()
    )
    before = room_item(aws)

    job_failed(aws, task_arn)
    forged = sqs_event(aws.queue_url, sender_id=f"{ROLE_ID}:someothertaskid")
    assert timer.handler(forged, LambdaContext()) == {"batchItemFailures": []}, "dropped, not retried"
    assert room_item(aws) == before

    job_failed(aws, task_arn)
    timer.handler(
        sqs_event(aws.queue_url, sender_id=f"{ROLE_ID}:{task_arn.rsplit('/', 1)[-1]}"), LambdaContext()
    )
    assert len(room_item(aws)["crashes"]["L"]) == 1, "counted toward the crash loop"


@pytest.mark.parametrize(
    ("kind", "task_arn", "sender", "allowed"),
    [
        ("job_ended", "arn:aws:ecs:r:1:task/c/t1", f"{ROLE_ID}:t1", True),
        ("job_ended", "arn:aws:ecs:r:1:task/c/t1", f"{ROLE_ID}:t2", False),
        ("job_ended", "arn:aws:ecs:r:1:task/c/t1", "AIDAOPERATOR", False),
        ("worker_ready", "arn:aws:ecs:r:1:task/c/t1", f"{ROLE_ID}:t1", True),
        ("worker_ready", "arn:aws:ecs:r:1:task/c/t1", f"{ROLE_ID}:t2", False),
        ("grace_expired", None, f"{ROLE_ID}:t1", False),
        ("grace_expired", None, "AROALAMBDA:fn", True),
    ],
)
def test_sender_may_send_only_its_own_task_messages(
    kind: str, task_arn: str | None, sender: str, allowed: bool
) -> None:
    assert sender_may_send(kind, task_arn, sender, ROLE_ID) is allowed
