"""The worker's side of the control-plane contract (:mod:`control_plane.worker_protocol`).

The worker writes only the fields it owns (status, capacity, jobs, heartbeat, the room it
was launched for) with one ``UpdateItem``; it never writes ``draining``, the slot fields
(``reserved``, ``assigned``), the ECS fields the task-events function keeps, nor ``attention``
(the index the sweep and ``GET /rooms`` read): the control plane puts the task's item in the
index when it launches it and at each ECS event. The task role allows exactly these attributes
(:data:`WORKER_WRITTEN_ATTRIBUTES`, ``dynamodb:Attributes`` in template.yaml), so a compromised
task cannot tag its item as a room or free its own slots. It then reads back ``draining`` alone
(:data:`WORKER_READ_ATTRIBUTES`): that is how the worker hears the control plane wants it gone.

Its item is keyed by its own credentials (:func:`worker_key`), the only ``TASK#`` key the task
role lets it write: a compromised task can misreport itself, but no other worker.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from control_plane.worker_protocol import (
    JobEnded,
    JobStarted,
    WorkerReady,
    WorkerRecord,
    WorkerStatus,
    worker_pk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

WORKER_OWNED_FIELDS = frozenset({"task_arn", "status", "capacity", "jobs", "heartbeat_at", "launched_for"})
WORKER_WRITTEN_ATTRIBUTES = frozenset({"pk", *WORKER_OWNED_FIELDS})
"""Every attribute a heartbeat names (key included): the task role's ``dynamodb:Attributes``."""
WORKER_READ_ATTRIBUTES = frozenset({"pk", "draining"})
"""What the worker reads of its item after each write: its ``GetItem``'s ``dynamodb:Attributes``."""
DRAIN_FLAGGED = "the control plane set draining on the worker record"
RECORDED_STOPPED = "the control plane recorded this task as stopped"

_serializer = TypeSerializer()


def worker_key(task_arn: str, task_role_id: str) -> str:
    """``TASK#<role id>:<task id>``: ``TASK#`` plus the ``aws:userid`` of the task's role
    credentials (ECS names their session after the task ID), the one key the role may write."""
    return worker_pk(task_arn, task_role_id)


class WorkerKeyRefused(RuntimeError):
    """The table refused the record's key: ``AGENT_TASK_ROLE_ID`` is not this task's role."""


class DynamoWorkerRecord:
    """Writes the task's own worker item; a stopped item is never brought back to life."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        task_arn: str,
        task_role_id: str,
        capacity: int,
        launched_for: str | None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._task_arn = task_arn
        self._key = worker_key(task_arn, task_role_id)
        self._capacity = capacity
        self._launched_for = launched_for

    @property
    def key(self) -> str:
        return self._key

    def write(self, status: WorkerStatus, jobs: dict[str, str], now: float) -> str | None:
        """Write the record; returns why the control plane wants this worker to drain, if it does."""
        record = WorkerRecord(
            task_arn=self._task_arn,
            status=status,
            capacity=self._capacity,
            jobs=jobs,
            heartbeat_at=now,
            launched_for=self._launched_for,
        )
        fields = record.model_dump(mode="json", include=set(WORKER_OWNED_FIELDS), exclude_none=True)
        names = {f"#{name}": name for name in fields}
        values = {f":{name}": _serializer.serialize(_to_dynamo(value)) for name, value in fields.items()}
        values[":stopped"] = {"S": WorkerStatus.STOPPED.value}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": self._key}},
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in fields),
                ConditionExpression="attribute_not_exists(#status) OR #status <> :stopped",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "ConditionalCheckFailedException":
                return RECORDED_STOPPED
            if code == "AccessDeniedException":
                raise WorkerKeyRefused(
                    f"the task role may write only TASK#${{aws:userid}}, and {self._key} is not it:"
                    " AGENT_TASK_ROLE_ID must be the task role's RoleId"
                ) from error
            raise
        return DRAIN_FLAGGED if self._drain_flagged() else None

    def _drain_flagged(self) -> bool:
        """Read back ``draining`` alone: the role may read no other attribute of the item."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": self._key}},
            ProjectionExpression="#draining",
            ExpressionAttributeNames={"#draining": "draining"},
            ConsistentRead=True,
        )
        return bool(response.get("Item", {}).get("draining", {}).get("BOOL"))


class SqsReadySignal:
    """Wakes the control plane: the rooms waiting for a slot, first the one this task was
    launched for (a hint: the worker takes whichever room's job LiveKit hands it)."""

    def __init__(self, client: SQSClient, queue_url: str, *, task_arn: str, room: str | None) -> None:
        self._client = client
        self._queue_url = queue_url
        self._message = WorkerReady(task_arn=task_arn, room=room).model_dump_json()

    def send(self) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=self._message)


class SqsJobReports:
    """Sends a job's :class:`JobStarted` and :class:`JobEnded` reports on the timer queue (only
    about this task: the control plane drops one whose ``task_arn`` is not the sender's)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, message: JobStarted | JobEnded) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())


def _to_dynamo(value: Any) -> Any:
    """DynamoDB numbers: floats go in as exact decimals, like the control plane writes them."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _to_dynamo(item) for key, item in value.items()}
    return value
