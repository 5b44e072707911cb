"""The contract between agent workers (Fargate tasks) and the control plane.

A worker announces readiness in two ways, both required:
1. it writes its ``TASK#<arn>`` item in the table (:class:`WorkerRecord`, status ``ready``),
2. it sends a :class:`WorkerReady` message on the timer queue, which wakes the room the task
   was launched for (``LAUNCHED_FOR_ROOM`` env override set by RunTask).
It then re-writes the item every ``HEARTBEAT_SECONDS``. The control plane sets ``draining``
on the item to ask the worker to finish and exit. Only pydantic here, so the worker can
import it without the Lambda dependencies.

Item layout (DynamoDB): ``pk = "TASK#" + task_arn``; one attribute per :class:`WorkerRecord`
field, same names, numbers as N; ``attention = "worker"`` while the status is not
``stopped`` (the sparse index the sweeper reads). Workers write with ``UpdateItem`` and never
touch ``draining`` (the control plane owns it), so a heartbeat cannot undo a drain request.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

WORKER_PK_PREFIX = "TASK#"
ROOM_PK_PREFIX = "ROOM#"
WORKER_ATTENTION = "worker"
LAUNCHED_FOR_ROOM_ENV = "LAUNCHED_FOR_ROOM"
LAUNCH_TOKEN_ENV = "LAUNCH_TOKEN"


class WorkerStatus(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class WorkerRecord(BaseModel):
    """The ``TASK#<arn>`` item. ``jobs`` maps room name to LiveKit job id."""

    model_config = ConfigDict(frozen=True)

    task_arn: str
    status: WorkerStatus
    capacity: int = Field(ge=0)
    jobs: dict[str, str] = Field(default_factory=dict)
    heartbeat_at: float
    launched_for: str | None = None
    draining: bool = False
    ecs_version: int = 0
    last_status: str | None = None
    stop_code: str | None = None
    expires_at: int | None = None

    def is_ready(self, now: float, stale_after: float) -> bool:
        """Ready to take a job: says so, is not draining, and its heartbeat is fresh."""
        return (
            self.status is WorkerStatus.READY and not self.draining and now - self.heartbeat_at <= stale_after
        )


class GraceExpired(BaseModel):
    """Delayed message sent when a room enters its grace period."""

    kind: Literal["grace_expired"] = "grace_expired"
    room: str
    generation: int


class WorkerReady(BaseModel):
    """Sent by a worker once it is registered with LiveKit and can take a job."""

    kind: Literal["worker_ready"] = "worker_ready"
    task_arn: str
    room: str | None = None


class Respawn(BaseModel):
    """Delayed message that retries an agent for a room after its task crashed."""

    kind: Literal["respawn"] = "respawn"
    room: str
    attempt: int


TimerMessage = Annotated[GraceExpired | WorkerReady | Respawn, Field(discriminator="kind")]
TIMER_MESSAGE = TypeAdapter(TimerMessage)
