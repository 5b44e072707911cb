"""The warm pool through the Lambda handlers on moto and the fake LiveKit: a worker is warm before
the first human joins, takes the room in the join's own webhook, and is recycled after it."""

from __future__ import annotations

import time

import boto3
import pytest

from control_plane import composition
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.worker_protocol import JobStarted, WorkerReady, WorkerRecord, WorkerStatus
from handlers import sweeper, timer, webhook
from local.fixtures import (
    TABLE,
    LambdaContext,
    LocalAws,
    http_api_event,
    scheduler_event,
    signed_headers,
    sqs_event,
    webhook_body,
)

GRACE_SECONDS = 1


@pytest.fixture
def warm_aws(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    monkeypatch.setenv("WARM_TASKS", "1")
    monkeypatch.setenv("GRACE_PERIOD_SECONDS", str(GRACE_SECONDS))
    composition.reset()
    return aws


def store() -> DynamoDBStore:
    return DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)


def running_tasks(aws: LocalAws) -> list[str]:
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster="livekit-agents", desiredStatus="RUNNING")["taskArns"]
    return sorted(arns)


def deliver(aws: LocalAws, kind: str, sid: str) -> None:
    live = aws.livekit.state.get_room("room-1")
    assert live is not None
    body = webhook_body(kind, room_sid=live.sid, sid=sid)
    headers = signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    assert webhook.handler(http_api_event(body, headers), LambdaContext())["statusCode"] == 200


def worker_reports(aws: LocalAws, message: WorkerReady | JobStarted) -> None:
    aws.client("sqs").send_message(QueueUrl=aws.queue_url, MessageBody=message.model_dump_json())
    assert timer.handler(sqs_event(aws.queue_url), LambdaContext()) == {"batchItemFailures": []}


def test_a_warm_worker_takes_the_first_human_in_its_webhook_and_is_recycled_after(warm_aws: LocalAws) -> None:
    aws = warm_aws
    assert running_tasks(aws) == [], "nothing runs before the pool is sized"
    sweeper.handler(scheduler_event(), LambdaContext())
    [warm] = running_tasks(aws)
    assert store().get_worker(warm).status is WorkerStatus.STARTING  # type: ignore[union-attr]

    # The warm task's worker registers with LiveKit and reports ready: no room yet.
    aws.livekit.state.register_worker("voice-agent")
    store().put_worker(
        WorkerRecord(task_arn=warm, status=WorkerStatus.READY, capacity=1, heartbeat_at=time.time())
    )
    worker_reports(aws, WorkerReady(task_arn=warm))

    aws.livekit.state.open_room("room-1", departure_timeout=GRACE_SECONDS + 10)
    aws.livekit.state.add_participant("room-1", "PA_1", "alice")
    deliver(aws, "participant_joined", "PA_1")

    room = store().get("room-1")
    assert room is not None and room.agent is not None
    assert room.agent.task_arn == warm and room.agent.slot_reserved
    [dispatch] = aws.livekit.state.list_dispatches("room-1")
    assert dispatch.has_running_job, "dispatched in the join's own webhook, onto the warm worker"
    assert room.state.value == "active"
    tasks = running_tasks(aws)
    assert len(tasks) == 2, "the pool launched a replacement at once"

    aws.livekit.state.hand_job("room-1", warm, "AJ_1")
    worker_reports(aws, JobStarted(task_arn=warm, room="room-1", room_sid=room.sid, job_id="AJ_1"))
    assert store().get("room-1").agent.job_id == "AJ_1"  # type: ignore[union-attr]

    aws.livekit.state.remove_participant("room-1", "PA_1")
    deliver(aws, "participant_left", "PA_1")
    time.sleep(GRACE_SECONDS + 0.5)
    assert timer.handler(sqs_event(aws.queue_url), LambdaContext()) == {"batchItemFailures": []}

    assert store().get("room-1").state.value == "closed"  # type: ignore[union-attr]
    assert aws.livekit.state.list_dispatches("room-1") == []
    assert warm not in running_tasks(aws), "JOBS_PER_TASK=1: the task that served the room is gone"
    assert [t for t in tasks if t != warm] == running_tasks(aws), "the replacement stays warm"
