"""The worker's record and ready signal, read back by the control plane's own adapters (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from agent_worker.registry import DRAIN_FLAGGED, RECORDED_STOPPED, DynamoWorkerRecord, SqsReadySignal
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.worker_protocol import TIMER_MESSAGE, WorkerReady, WorkerStatus
from tests.aws import create_table

TABLE = "lifecycle"
TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/agents/0123456789abcdef"
NOW = 1_700_000_000.25


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    create_table(client, TABLE)
    return client


@pytest.fixture
def control_plane(dynamodb: Any) -> DynamoDBStore:
    return DynamoDBStore(dynamodb, TABLE)


@pytest.fixture
def record(dynamodb: Any) -> DynamoWorkerRecord:
    return DynamoWorkerRecord(dynamodb, TABLE, task_arn=TASK_ARN, capacity=2, launched_for="standup")


def test_the_control_plane_reads_a_ready_worker_from_its_heartbeat(
    record: DynamoWorkerRecord, control_plane: DynamoDBStore
) -> None:
    assert record.write(WorkerStatus.READY, {"standup": "AJ_1"}, NOW) is None

    worker = control_plane.get_worker(TASK_ARN)
    assert worker is not None
    assert (worker.status, worker.capacity, worker.jobs) == (WorkerStatus.READY, 2, {"standup": "AJ_1"})
    assert worker.heartbeat_at == NOW
    assert worker.launched_for == "standup"
    assert worker.is_ready(NOW + 10, stale_after=45)
    assert [live.task_arn for live in control_plane.live_workers()] == [TASK_ARN]


def test_a_drain_request_reaches_the_worker_and_no_heartbeat_undoes_it(
    record: DynamoWorkerRecord, control_plane: DynamoDBStore
) -> None:
    record.write(WorkerStatus.READY, {}, NOW)
    control_plane.mark_draining(TASK_ARN)

    assert record.write(WorkerStatus.READY, {}, NOW + 15) == DRAIN_FLAGGED
    assert record.write(WorkerStatus.DRAINING, {}, NOW + 30) == DRAIN_FLAGGED
    worker = control_plane.get_worker(TASK_ARN)
    assert worker is not None
    assert worker.draining
    assert not worker.is_ready(NOW + 30, stale_after=45)


def test_heartbeats_leave_the_fields_the_control_plane_owns_alone(
    record: DynamoWorkerRecord, control_plane: DynamoDBStore
) -> None:
    record.write(WorkerStatus.STARTING, {}, NOW)
    seen = control_plane.get_worker(TASK_ARN)
    assert seen is not None
    control_plane.put_worker(seen.model_copy(update={"ecs_version": 3, "last_status": "RUNNING"}))

    record.write(WorkerStatus.READY, {"standup": "AJ_1"}, NOW + 15)

    worker = control_plane.get_worker(TASK_ARN)
    assert worker is not None
    assert (worker.ecs_version, worker.last_status, worker.status) == (3, "RUNNING", WorkerStatus.READY)


def test_a_stopped_record_leaves_the_sweep_and_is_never_revived(
    record: DynamoWorkerRecord, control_plane: DynamoDBStore
) -> None:
    record.write(WorkerStatus.READY, {}, NOW)
    record.write(WorkerStatus.STOPPED, {}, NOW + 5)
    assert list(control_plane.live_workers()) == []

    assert record.write(WorkerStatus.READY, {}, NOW + 15) == RECORDED_STOPPED
    worker = control_plane.get_worker(TASK_ARN)
    assert worker is not None
    assert worker.status is WorkerStatus.STOPPED


def test_the_ready_signal_is_a_timer_message_for_the_room_the_task_was_launched_for(aws: None) -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    queue_url = sqs.create_queue(QueueName="timers")["QueueUrl"]

    SqsReadySignal(sqs, queue_url, task_arn=TASK_ARN, room="standup").send()

    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert TIMER_MESSAGE.validate_json(message["Body"]) == WorkerReady(task_arn=TASK_ARN, room="standup")
