"""The worker's record and ready signal, on moto, read back as the control plane reads them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from control_plane_view import ControlPlaneView
from moto import mock_aws

from agent_worker.registry import (
    DRAIN_FLAGGED,
    RECORDED_STOPPED,
    WORKER_WRITTEN_ATTRIBUTES,
    DynamoWorkerRecord,
    SqsJobReports,
    SqsReadySignal,
    WorkerKeyRefused,
    worker_key,
)
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.worker_protocol import (
    TIMER_MESSAGE,
    WORKER_PK_PREFIX,
    JobEnded,
    JobFailureReason,
    JobOutcome,
    JobStarted,
    WorkerReady,
    WorkerStatus,
)
from local.fixtures import create_table

TABLE = "lifecycle"
TASK_ID = "0123456789abcdef0123456789abcdef"
TASK_ARN = f"arn:aws:ecs:eu-west-1:123456789012:task/agents/{TASK_ID}"
ROLE_ID = "AROAEXAMPLEAGENTROLE1"
USERID = f"{ROLE_ID}:{TASK_ID}"
"""``aws:userid`` of this task's role credentials: ECS names the session after the task ID."""
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
def control_plane(dynamodb: Any) -> ControlPlaneView:
    return ControlPlaneView(dynamodb, TABLE, task_role_id=ROLE_ID, task_arn=TASK_ARN)


@pytest.fixture
def record(dynamodb: Any) -> DynamoWorkerRecord:
    return DynamoWorkerRecord(
        dynamodb, TABLE, task_arn=TASK_ARN, task_role_id=ROLE_ID, capacity=2, launched_for="standup"
    )


def test_the_record_is_keyed_by_the_tasks_own_credentials(dynamodb: Any, record: DynamoWorkerRecord) -> None:
    """The task role may write only ``TASK#${aws:userid}``: the worker writes exactly that key,
    and no key the task ARN alone (which anyone can name) would give."""
    record.write(WorkerStatus.READY, {}, NOW)

    keys = [item["pk"]["S"] for item in dynamodb.scan(TableName=TABLE)["Items"]]
    assert keys == [WORKER_PK_PREFIX + USERID]
    assert worker_key(TASK_ARN, ROLE_ID) == "TASK#AROAEXAMPLEAGENTROLE1:0123456789abcdef0123456789abcdef"
    assert worker_key("arn:aws:ecs:eu-west-1:123456789012:task/" + TASK_ID, ROLE_ID) == record.key, (
        "old-format task ARNs (no cluster) end in the same task ID"
    )


def test_the_control_plane_reads_a_ready_worker_from_its_heartbeat(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView, dynamodb: Any
) -> None:
    control_plane.record_launch()
    assert record.write(WorkerStatus.READY, {"standup": "AJ_1"}, NOW) is None

    worker = control_plane.get()
    assert worker is not None
    assert worker.task_arn == TASK_ARN
    assert (worker.status, worker.capacity, worker.jobs) == (WorkerStatus.READY, 2, {"standup": "AJ_1"})
    assert worker.heartbeat_at == NOW
    assert worker.launched_for == "standup"
    assert worker.is_ready(NOW + 10, stale_after=45)
    sweep = DynamoDBStore(dynamodb, TABLE, task_role_id=ROLE_ID)
    assert [live.task_arn for live in sweep.live_workers()] == [TASK_ARN], "the sweep's index sees it"


def test_a_drain_request_reaches_the_worker_and_no_heartbeat_undoes_it(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView
) -> None:
    record.write(WorkerStatus.READY, {}, NOW)
    control_plane.mark_draining()

    assert record.write(WorkerStatus.READY, {}, NOW + 15) == DRAIN_FLAGGED
    assert record.write(WorkerStatus.DRAINING, {}, NOW + 30) == DRAIN_FLAGGED
    worker = control_plane.get()
    assert worker is not None
    assert worker.draining
    assert not worker.is_ready(NOW + 30, stale_after=45)


def test_heartbeats_leave_the_fields_the_control_plane_owns_alone(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView
) -> None:
    record.write(WorkerStatus.STARTING, {}, NOW)
    control_plane.record_ecs_state(3, "RUNNING")

    record.write(WorkerStatus.READY, {"standup": "AJ_1"}, NOW + 15)

    worker = control_plane.get()
    assert worker is not None
    assert (worker.ecs_version, worker.last_status, worker.status) == (3, "RUNNING", WorkerStatus.READY)


def test_heartbeats_write_only_the_attributes_the_task_role_allows(
    record: DynamoWorkerRecord, dynamodb: Any
) -> None:
    """No ``attention`` (the index ``GET /rooms`` and the sweep read), no slot fields: a
    worker's own item holds only what it owns, and the control plane's launch record the rest."""
    record.write(WorkerStatus.READY, {"standup": "AJ_1"}, NOW)

    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": record.key}})["Item"]
    assert set(item) == WORKER_WRITTEN_ATTRIBUTES


def test_the_launch_record_creates_the_slot_map_the_control_plane_reserves_in(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView
) -> None:
    """The control plane's slot write is ``SET reserved.#room = …``, which fails on an item
    with no ``reserved`` map: its own launch record makes one, before or after a heartbeat."""
    record.write(WorkerStatus.READY, {}, NOW)
    control_plane.record_launch()

    assert control_plane.reserve_slot("standup", NOW + 1)
    worker = control_plane.get()
    assert worker is not None
    assert (worker.reserved, worker.assigned) == ({"standup": NOW + 1}, 1)


def test_heartbeats_never_touch_the_slots_the_control_plane_reserved(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView
) -> None:
    control_plane.record_launch()
    record.write(WorkerStatus.READY, {}, NOW)
    assert control_plane.reserve_slot("standup", NOW + 1, jobs_per_task=2)
    assert control_plane.reserve_slot("retro", NOW + 2, jobs_per_task=2)

    record.write(WorkerStatus.READY, {"standup": "AJ_1"}, NOW + 15)
    record.write(WorkerStatus.DRAINING, {}, NOW + 30)
    record.write(WorkerStatus.STOPPED, {}, NOW + 45)

    worker = control_plane.get()
    assert worker is not None
    assert (worker.reserved, worker.assigned) == ({"standup": NOW + 1, "retro": NOW + 2}, 2)


def test_slots_written_before_the_workers_first_write_are_kept(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView, dynamodb: Any
) -> None:
    dynamodb.put_item(
        TableName=TABLE,
        Item={"pk": {"S": record.key}, "reserved": {"M": {"standup": {"N": "1"}}}, "assigned": {"N": "1"}},
    )

    record.write(WorkerStatus.STARTING, {}, NOW)

    worker = control_plane.get()
    assert worker is not None
    assert (worker.reserved, worker.assigned) == ({"standup": 1.0}, 1)


def test_a_stopped_record_leaves_the_sweep_and_is_never_revived(
    record: DynamoWorkerRecord, control_plane: ControlPlaneView, dynamodb: Any
) -> None:
    control_plane.record_launch()
    record.write(WorkerStatus.READY, {}, NOW)
    record.write(WorkerStatus.STOPPED, {}, NOW + 5)
    assert list(DynamoDBStore(dynamodb, TABLE, task_role_id=ROLE_ID).live_workers()) == []

    assert record.write(WorkerStatus.READY, {}, NOW + 15) == RECORDED_STOPPED
    worker = control_plane.get()
    assert worker is not None
    assert worker.status is WorkerStatus.STOPPED


def test_a_key_the_role_refuses_says_which_setting_is_wrong(aws: None) -> None:
    """A wrong ``AGENT_TASK_ROLE_ID`` gives a key IAM denies on every heartbeat: say so."""
    client = boto3.client("dynamodb", region_name="eu-west-1")
    record = DynamoWorkerRecord(
        client, TABLE, task_arn=TASK_ARN, task_role_id="AROAWRONG", capacity=1, launched_for=None
    )
    with Stubber(client) as stub:
        stub.add_client_error("update_item", "AccessDeniedException", http_status_code=400)
        with pytest.raises(WorkerKeyRefused, match="AGENT_TASK_ROLE_ID") as refused:
            record.write(WorkerStatus.READY, {}, NOW)
    assert isinstance(refused.value.__cause__, ClientError)


def test_the_ready_signal_is_a_timer_message_naming_the_room_the_task_was_launched_for(aws: None) -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    queue_url = sqs.create_queue(QueueName="timers")["QueueUrl"]

    SqsReadySignal(sqs, queue_url, task_arn=TASK_ARN, room="standup").send()

    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert TIMER_MESSAGE.validate_json(message["Body"]) == WorkerReady(task_arn=TASK_ARN, room="standup")


def test_a_job_report_is_a_timer_message_naming_this_task(aws: None) -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    queue_url = sqs.create_queue(QueueName="timers")["QueueUrl"]
    report = JobEnded(
        task_arn=TASK_ARN,
        room="standup",
        job_id="AJ_1",
        outcome=JobOutcome.FAILURE,
        reason=JobFailureReason.SPEECH_UNAVAILABLE,
        exception_type="APIConnectionError",
        duration_seconds=1.5,
    )

    SqsJobReports(sqs, queue_url).send(report)

    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert TIMER_MESSAGE.validate_json(message["Body"]) == report


def test_a_job_start_is_a_timer_message_naming_this_task(aws: None) -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    queue_url = sqs.create_queue(QueueName="timers")["QueueUrl"]
    report = JobStarted(task_arn=TASK_ARN, room="standup", room_sid="RM_1", job_id="AJ_1", dispatch_id="AD_1")

    SqsJobReports(sqs, queue_url).send(report)

    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert TIMER_MESSAGE.validate_json(message["Body"]) == report
