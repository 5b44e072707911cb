"""The contract between agent workers (Fargate tasks) and the control plane.

A worker announces readiness in two ways, both required:
1. it writes its own ``TASK#`` item in the table (:class:`WorkerRecord`, status ``ready``),
2. it sends a :class:`WorkerReady` message on the timer queue, which wakes the room the task
   was launched for (``LAUNCHED_FOR_ROOM`` env override set by RunTask).
It then re-writes the item every ``HEARTBEAT_SECONDS``. The control plane sets ``draining``
on the item to ask the worker to finish and exit. Only pydantic here, so the worker can
import it without the Lambda dependencies.

Item layout (DynamoDB): ``pk = WORKER_PK_FORMAT`` (``TASK#<task role id>:<task id>``); one
attribute per :class:`WorkerRecord` field, same names, numbers as N; ``attention = "worker"``
(the sparse index the sweeper reads) from the control plane's launch record until ECS reports
the task stopped. Workers write with ``UpdateItem`` only the fields they own and never touch
``draining``, the slot fields or ``attention`` (the control plane owns them; the task role's
``dynamodb:Attributes`` allows no other), so a heartbeat cannot undo a drain request.

Why that key: ECS names the session of a task's role credentials after the task ID, so their
``aws:userid`` is ``<role id>:<task id>``. The task role may update only the item whose key is
``"TASK#${aws:userid}"`` (``dynamodb:LeadingKeys``), so IAM, not the worker's honesty, keeps a
task to its own record. Both sides know the role id from ``AGENT_TASK_ROLE_ID`` (the task
role's ``RoleId``); the task id is the last segment of the task ARN. The key is the identity:
a reader must not trust the ``task_arn`` attribute of an item whose key is not the one that
ARN maps to.
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
TASK_ROLE_ID_ENV = "AGENT_TASK_ROLE_ID"
"""Environment variable holding the agent task role's ``RoleId`` (the ``AROA…`` id)."""
WORKER_PK_FORMAT = WORKER_PK_PREFIX + "{task_role_id}:{task_id}"
"""Key of a worker item: ``TASK#`` plus the ``aws:userid`` of the task's role credentials."""


def task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


AGENT_IDENTITY_FORMAT = "agent-{job_id}@{task_id}"
"""The participant identity a worker accepts a job with (LiveKit's default is ``agent-<job id>``).

LiveKit records it on the job (``Job.state.participant_identity``, from the worker's answer to
the job offer), so the control plane can confirm a :class:`JobStarted` claim: the room's
dispatch holds that job, and the worker that accepted it named this task. A task forging a
report about another room's job cannot make LiveKit say it took that job."""


def agent_identity(job_id: str, task_arn: str) -> str:
    return AGENT_IDENTITY_FORMAT.format(job_id=job_id, task_id=task_id(task_arn))


def worker_pk(task_arn: str, task_role_id: str) -> str:
    """The one worker key the task's role may write: ``TASK#<role id>:<task id>``."""
    return WORKER_PK_FORMAT.format(task_role_id=task_role_id, task_id=task_id(task_arn))


TASK_MESSAGE_KINDS = frozenset({"worker_ready", "job_started", "job_ended"})
"""Timer-queue messages an agent task may send, each only about itself (its own task_arn)."""


def sender_may_send(kind: str, task_arn: str | None, sender_id: str | None, task_role_id: str) -> bool:
    """Whether a timer-queue message may be acted on, judged by SQS's ``SenderId``.

    Agent tasks may send the queue only their own ``worker_ready``, ``job_started`` and
    ``job_ended`` (SQS stamps
    a task role's messages ``<role id>:<task id>``); anything else a task sends, or one of those
    naming another task, is forged. Without a configured role id (local runs) there is nothing to
    check against.
    """
    if not task_role_id:
        return True
    from_a_task = sender_id is not None and sender_id.startswith(task_role_id + ":")
    if kind not in TASK_MESSAGE_KINDS:
        return not from_a_task
    return task_arn is not None and sender_id == f"{task_role_id}:{task_id(task_arn)}"


class WorkerStatus(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class WorkerRecord(BaseModel):
    """A worker item (key :data:`WORKER_PK_FORMAT`).

    The worker owns ``jobs`` (room name to LiveKit job id, what it runs now). The control plane
    owns ``reserved`` (room name to when a slot was reserved for that room's agent) and
    ``assigned`` (how many rooms it has ever been given, for ``JOBS_PER_TASK``) and ``ready_at``
    (when its first ``WorkerReady`` was handled, set once: the one cold-start sample): a slot is taken
    only by a conditional write on them (see ``control_plane.pool``), so two rooms never count
    on the same slot.
    """

    model_config = ConfigDict(frozen=True)

    task_arn: str
    status: WorkerStatus
    capacity: int = Field(ge=0)
    jobs: dict[str, str] = Field(default_factory=dict)
    reserved: dict[str, float] = Field(default_factory=dict)
    assigned: int = Field(0, ge=0)
    heartbeat_at: float
    launched_at: float | None = None
    ready_at: float | None = None
    launched_for: str | None = None
    draining: bool = False
    ecs_version: int = 0
    last_status: str | None = None
    stop_code: str | None = None
    expires_at: int | None = None
    # The slot index's keys (``control_plane.slot_index``): control plane only, like ``reserved``.
    slot_key: str | None = None
    slot_free: int | None = None

    def is_ready(self, now: float, stale_after: float) -> bool:
        """Ready to take a job: says so, is not draining, and its heartbeat is fresh."""
        return (
            self.status is WorkerStatus.READY and not self.draining and now - self.heartbeat_at <= stale_after
        )

    def rooms(self) -> set[str]:
        """Rooms this worker hosts or is holding a slot for."""
        return set(self.jobs) | set(self.reserved)

    def free_slots(self, jobs_per_task: int) -> int:
        """Slots a new room may reserve: capacity less every room it hosts or holds, and never
        past ``jobs_per_task`` rooms in its life (the task is then recycled)."""
        return max(0, min(self.capacity - len(self.rooms()), jobs_per_task - self.assigned))


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
    """Delayed message that retries an agent for a room after its task crashed or its job
    failed, once the backoff is over."""

    kind: Literal["respawn"] = "respawn"
    room: str
    attempt: int


class JobStarted(BaseModel):
    """Sent by a worker when LiveKit hands it a job: which task hosts the room's agent now
    (LiveKit picks the worker, which may not be the one whose slot was reserved). From the task
    holding the room's slot it is believed as it comes; a claim that would move the agent to
    another task only once LiveKit confirms it (the room's dispatch holds ``job_id``, accepted
    as :func:`agent_identity` of this task); ``room_sid`` ties it to one session of the room."""

    kind: Literal["job_started"] = "job_started"
    task_arn: str
    room: str
    room_sid: str = Field(min_length=1)
    job_id: str
    dispatch_id: str | None = None


class JobOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class JobFailureReason(StrEnum):
    """Why a job failed, a small fixed set so it can be a metric dimension."""

    ENTRYPOINT_ERROR = "entrypoint_error"
    SPEECH_UNAVAILABLE = "speech_unavailable"
    LLM_UNAVAILABLE = "llm_unavailable"
    OTHER = "other"


class JobEnded(BaseModel):
    """Sent by a worker when one of its jobs ends, however it ended. A failure counts toward
    the room's crash loop (see ``control_plane.reconcile.count_failure``); a success does not."""

    kind: Literal["job_ended"] = "job_ended"
    task_arn: str
    room: str
    job_id: str
    outcome: JobOutcome
    reason: JobFailureReason | None = None
    exception_type: str | None = Field(default=None, max_length=200)
    duration_seconds: float = Field(ge=0)


class WakeRooms(BaseModel):
    """Capacity freed or became ready: let the rooms waiting for a slot try again."""

    kind: Literal["wake_rooms"] = "wake_rooms"


TimerMessage = Annotated[
    GraceExpired | WorkerReady | Respawn | JobStarted | JobEnded | WakeRooms, Field(discriminator="kind")
]
TIMER_MESSAGE = TypeAdapter(TimerMessage)
