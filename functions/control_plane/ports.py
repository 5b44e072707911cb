"""Ports: what the core needs from the outside world, as small typed protocols.

Every port has an in-memory twin (``adapters/memory/``) and a real adapter named after
what it wraps; the contract tests run one suite against both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from control_plane.pool import Demand
from control_plane.room import ParticipantChange, Room
from control_plane.worker_protocol import TimerMessage, WorkerRecord


class VersionConflict(Exception):
    """A conditional write lost to a concurrent writer; re-read and decide again."""


class LaunchFailed(Exception):
    """ECS refused to start a task (``failures[]`` non-empty, invalid parameters): nothing started."""


class LaunchOutcomeUnknown(Exception):
    """RunTask failed in a way that may still have started the task (timeout, 5xx, throttle
    after retries): the launch token must be kept and looked up before launching again."""


class LiveKitUnavailable(Exception):
    """LiveKit could not be reached or answered with a server error; nothing was changed."""


class LiveKitRateLimited(LiveKitUnavailable):
    """LiveKit answered 429 / ``resource_exhausted``: the project's API rate limit was hit."""


class RunnerUnavailable(Exception):
    """ECS could not be listed or described (throttled, unreachable); nothing was changed."""


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class RoomStore(Protocol):
    def get(self, name: str) -> Room | None: ...

    def create(self, room: Room) -> Room:
        """Insert a new room; raises VersionConflict if one exists already."""
        ...

    def save(self, room: Room, expected_version: int) -> Room:
        """Write ``room`` if the stored version is still ``expected_version``; returns it at +1."""
        ...

    def observe_participant(self, change: ParticipantChange) -> Room:
        """Record a join or leave and return the room after it.

        Same meaning as :func:`control_plane.room.observe_participant`; the DynamoDB adapter
        does it in one conditional ``UpdateItem`` with no read in the common case.
        """
        ...

    def claim_event(self, event_id: str, now: int, expires_at: int) -> bool:
        """Record a webhook id once; False if it is recorded and not yet expired (a duplicate)."""
        ...

    def release_event(self, event_id: str) -> None:
        """Forget a claimed id so LiveKit's retry is processed (the first attempt failed)."""
        ...

    def rooms_needing_attention(self, shards: Collection[int] | None = None) -> Iterable[Room]:
        """Rooms that are not idle or closed, from the sparse index; never a table scan. Only
        the rooms of ``shards`` (:func:`control_plane.shards.shard_of` of the name) if given."""
        ...

    def get_sweep_cursor(self, group: int = 0) -> str | None:
        """The room name sweep group ``group``'s next sweep starts at (its last one ran out of
        time there)."""
        ...

    def put_sweep_cursor(self, room: str | None, group: int = 0) -> None:
        """Remember where the group's next sweep starts; None starts it at the beginning."""
        ...


@dataclass(frozen=True)
class ObservedTaskState:
    """One ECS task state change, as the task-events function records it."""

    task_arn: str
    version: int
    last_status: str
    seen_at: float
    stop_code: str | None = None
    launched_for: str | None = None

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"


class WorkerRegistry(Protocol):
    def get_worker(self, task_arn: str) -> WorkerRecord | None: ...

    def put_worker(self, record: WorkerRecord) -> None:
        """Write what a worker reports (status, capacity, jobs, heartbeat); ``draining``,
        ``reserved``, ``assigned`` and the slot index's keys belong to the control plane and are
        kept (a ``stopped`` record leaves the index)."""
        ...

    def reserve_slot(self, worker: WorkerRecord, room: str, now: float, jobs_per_task: int) -> bool:
        """Take one slot on ``worker`` for ``room`` with a conditional write: it must still be
        ready, not draining, fresh, have a free slot (counting its jobs as read) and fewer than
        ``jobs_per_task`` rooms in its life. False if any of that no longer holds.

        Every write that changes a worker's slots (this one, adopt, release, reap, mark ready,
        the drains, stopped) also sets its slot index keys (``control_plane.slot_index``) from
        the record it is conditional on; ``jobs_per_task`` is part of what they derive from."""
        ...

    def adopt_slot(self, task_arn: str, room: str, now: float, jobs_per_task: int) -> None:
        """LiveKit gave ``room``'s job to this worker: record the slot it occupies (counted once)."""
        ...

    def release_slot(
        self, task_arn: str, room: str, jobs_per_task: int, unassign: bool = False
    ) -> WorkerRecord | None:
        """Free ``room``'s slot on the worker (``unassign``: the room never ran there, so it does
        not count toward ``JOBS_PER_TASK``); returns the record after, or as it is if the room
        held no slot there, None if unknown."""
        ...

    def drain_if_idle(self, task_arn: str) -> bool:
        """Set ``draining`` only if the worker hosts no job and holds no slot (one conditional
        write, so no reservation slips in between the check and the flag)."""
        ...

    def reap_slot(self, task_arn: str, room: str, reserved_at: float, jobs_per_task: int) -> bool:
        """Free ``room``'s slot if it is still the reservation made at ``reserved_at`` and the
        worker runs no job for the room (one conditional write; the room never ran there, so it
        does not count toward ``JOBS_PER_TASK``). False if anything changed."""
        ...

    def drain_after(self, task_arn: str, room: str) -> WorkerRecord | None:
        """Set ``draining`` once ``room``'s agent is gone, only if the worker holds no slot and
        hosts no job but ``room``'s (its own copy may still be listed): one conditional write, so
        a slot reserved or a job taken meanwhile keeps the worker. The record after, or None."""
        ...

    def put_waiting(self, room: str, since: float) -> None:
        """Remember that ``room`` waits for a slot (kept once, with its first ``since``)."""
        ...

    def remove_waiting(self, room: str) -> None: ...

    def is_waiting(self, room: str) -> bool: ...

    def waiting_rooms(self) -> list[tuple[str, float]]:
        """Rooms waiting for a slot with when they started waiting, oldest first."""
        ...

    def pool_demand(self) -> Demand: ...

    def count_arrival(self, now: float) -> None:
        """A room asked for an agent: one more arrival in the minute of ``now``."""
        ...

    def mark_ready(self, task_arn: str, now: float, jobs_per_task: int) -> WorkerRecord | None:
        """Set the worker's ``ready_at`` to ``now`` if it has none (one conditional write): the
        record after, or None if it was set before (a re-sent ``WorkerReady``) or is unknown."""
        ...

    def record_cold_start(self, seconds: float) -> None:
        """A launched task became ready after ``seconds``: fold it into the running average."""
        ...

    def mark_draining(self, task_arn: str) -> None:
        """Ask the worker to finish its jobs and exit (it polls its item on heartbeat)."""
        ...

    def live_workers(self, shards: Collection[int] | None = None) -> Iterable[WorkerRecord]:
        """Workers ECS has not reported stopped; only those of ``shards`` (by task ARN) if given.
        For the sweep and the operator views, never a slot decision."""
        ...

    def open_workers(self, shard: int, limit: int) -> list[WorkerRecord]:
        """Up to ``limit`` workers filed with a free slot in one shard of the slot index, fullest
        first (the index is eventually consistent: the reserve write checks the item)."""
        ...

    def pool_workers(self) -> list[WorkerRecord]:
        """Every worker in the slot index (free slots, tasks starting): what the pool sizes on."""
        ...

    def refile_slot(self, worker: WorkerRecord, jobs_per_task: int) -> bool:
        """Set the index keys ``worker`` should have, conditional on the item being as read
        (its jobs too): the sweep's repair of keys a worker's own write left behind."""
        ...

    def record_task_state(self, state: ObservedTaskState) -> bool:
        """Write ECS's view into the worker record, only if ``state.version`` is newer than the
        recorded one (events arrive unordered and twice). Never touches fields the worker
        owns on an existing record; creates a ``starting`` record for a task not yet heard
        from; STOPPED makes it ``stopped`` and drops it from the index. False if stale."""
        ...


@dataclass(frozen=True)
class LaunchedTask:
    task_arn: str
    launch_token: str


@dataclass(frozen=True)
class TaskSnapshot:
    """One of our ECS tasks as DescribeTasks shows it (times in epoch seconds, None if unknown)."""

    task_arn: str
    last_status: str
    desired_status: str
    created_at: float | None = None
    started_at: float | None = None
    launch_token: str | None = None
    room: str | None = None
    stop_code: str | None = None
    exit_codes: tuple[int | None, ...] = ()

    def age(self, now: float) -> float | None:
        started = self.started_at if self.started_at is not None else self.created_at
        return None if started is None else now - started


class AgentRunner(Protocol):
    def launch(self, room: str | None, launch_token: str, count: int = 1) -> list[LaunchedTask]:
        """Start ``count`` (1..10, one RunTask call) worker tasks, for ``room`` or for the warm
        pool (None). Idempotent per ``launch_token``; raises LaunchFailed."""
        ...

    def find_launched(self, launch_token: str) -> str | None:
        """The live task started with this token, for taking over a launch whose owner died."""
        ...

    def stop(self, task_arn: str, reason: str) -> None:
        """Stop a task; a task that is already gone is not an error."""
        ...

    def list_tasks(self) -> list[TaskSnapshot]:
        """Every task we started that is meant to run (desired RUNNING), described.

        ``ListTasks(startedBy=…)`` paginated, then ``DescribeTasks`` in chunks of 100;
        raises RunnerUnavailable if ECS cannot be read.
        """
        ...

    def describe_tasks(self, task_arns: Sequence[str]) -> list[TaskSnapshot]:
        """These tasks in whatever state; ones ECS no longer knows are left out."""
        ...


@dataclass(frozen=True)
class LaunchGrant:
    """What the launch limiter allows now: ``tasks`` (0..asked) in one RunTask call, and when
    to ask again for the rest."""

    tasks: int
    retry_after: float = 0.0


class LaunchLimiter(Protocol):
    def acquire(self, tasks: int, now: float) -> LaunchGrant:
        """Take tokens for one RunTask call of up to ``tasks`` tasks (≤ 10) from the buckets every
        Lambda shares: Fargate's task launch rate and RunTask's call rate. Grants what fits now,
        possibly nothing; never blocks."""
        ...


@dataclass(frozen=True)
class DispatchJob:
    job_id: str
    status: str  # JS_PENDING, JS_RUNNING, JS_SUCCESS, JS_FAILED
    participant_identity: str = ""
    """Who took the job: the identity its worker accepted it with (empty while pending)."""


@dataclass(frozen=True)
class Dispatch:
    dispatch_id: str
    room: str
    agent_name: str
    metadata: str
    created_at: float
    jobs: tuple[DispatchJob, ...] = ()

    @property
    def has_running_job(self) -> bool:
        return any(job.status in ("JS_PENDING", "JS_RUNNING") for job in self.jobs)


@dataclass(frozen=True)
class LiveParticipant:
    sid: str
    identity: str
    kind: int
    joined_at: float


@dataclass(frozen=True)
class LiveRoom:
    sid: str
    name: str
    num_participants: int
    departure_timeout: int
    created_at: float
    empty_timeout: int = 0


class LiveKitGateway(Protocol):
    def list_dispatches(self, room: str) -> list[Dispatch]: ...

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch: ...

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        """Delete a dispatch and end its jobs; ``not_found`` means already gone, not an error."""
        ...

    def list_participants(self, room: str) -> list[LiveParticipant]: ...

    def list_rooms(self) -> list[LiveRoom]: ...

    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom: ...


class TaskCount(Protocol):
    """The live tasks every Lambda counts before it launches, so ``MAX_TASKS`` is a hard cap
    (``control_plane.task_count``): one conditional item, idempotent steps, healed by the sweep."""

    def reserve(self, keys: Sequence[str], max_tasks: int, now: float) -> list[str]:
        """Count launches, one per key, while the count stays at most ``max_tasks``; the keys
        that may launch (a key counted already is granted again, not counted twice)."""
        ...

    def confirm(self, keys: Sequence[str], task_arns: Sequence[str], now: float) -> None:
        """The launches under ``keys`` started these tasks: count them by ARN from now on."""
        ...

    def release(self, keys: Collection[str]) -> None:
        """Forget these keys or task ARNs (a refused launch, a stopped task); idempotent."""
        ...

    def heal(self, listed: Collection[str], now: float) -> None:
        """Rebuild the count from ECS's listing of our tasks meant to run."""
        ...

    def live(self) -> dict[str, float]: ...


class MetricsSink(Protocol):
    def count(
        self, name: str, value: float = 1, unit: str = "Count", dimensions: Mapping[str, str] | None = None
    ) -> None:
        """Add to a low-cardinality metric (never a room name or sid as a dimension)."""
        ...


class Timers(Protocol):
    def send(self, message: TimerMessage, delay_seconds: int) -> None:
        """Deliver ``message`` to the timer function after ``delay_seconds`` (0..900)."""
        ...


@dataclass
class Ports:
    rooms: RoomStore
    workers: WorkerRegistry
    runner: AgentRunner
    livekit: LiveKitGateway
    timers: Timers
    clock: Clock
    metrics: MetricsSink
    limiter: LaunchLimiter | None = None
    tasks: TaskCount | None = None
