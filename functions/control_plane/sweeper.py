"""The scheduled sweep: the backstop that finds what webhooks, timers and task events missed.

Every minute it reads only what is active — our ECS tasks, the sparse index (rooms that are not
settled, live workers), LiveKit's room list — then:

1. stops tasks nobody owns, whose worker went silent or never became ready, idle ones beyond
   the warm pool, and agents past the maximum age; learns how claimed tasks that vanished
   stopped (a missed task event) and treats them like the event would;
2. per room, in name order from a cursor: fixes missed joins and leaves from ListParticipants,
   closes rooms LiveKit no longer has, cleans our agent's dispatches (duplicates, dead ones,
   leftovers in rooms nobody is in), and calls the same ``reconcile`` every trigger uses.

A listing that fails makes the sweep skip what depends on it, so nothing is deleted or stopped
on the strength of a listing it does not have; the failure is logged and counted and the next
sweep tries again. The fan-out is asyncio with a semaphore on one event loop (the LiveKit
gateway's, kept across warm invocations). Blocking calls — DynamoDB, ECS, ``reconcile`` itself —
run in a thread pool of the same size, and their LiveKit calls are bridged back onto that loop.
The sweep starts no new room once the Lambda's remaining time falls below the safety margin and
leaves the cursor there, so the next sweep starts with the rooms this one did not reach.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Any, Protocol, TypeVar

from control_plane.controller import RoomController
from control_plane.humans import is_human
from control_plane.ports import (
    Dispatch,
    LiveKitGateway,
    LiveKitUnavailable,
    LiveParticipant,
    LiveRoom,
    MetricsSink,
    Ports,
    RunnerUnavailable,
    TaskSnapshot,
)
from control_plane.reconcile import grace_expired
from control_plane.room import NEEDS_ATTENTION, ChangeKind, ParticipantChange, Room, RoomState
from control_plane.task_events import is_crash
from control_plane.worker_protocol import WorkerRecord, WorkerStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

# LiveKit's listings and our records are read at different moments: anything that changed
# within this margin of a listing is left for the next sweep rather than judged on it.
LISTING_MARGIN_SECONDS = 10.0


class DeleteReason(StrEnum):
    DUPLICATE = "duplicate"
    NO_LIVE_JOB = "no_live_job"
    NO_HUMANS = "no_humans"


class StopReason(StrEnum):
    ORPHAN = "orphan"
    STALE_HEARTBEAT = "stale_heartbeat"
    NEVER_READY = "never_ready"
    IDLE = "idle"
    MAX_AGE = "max_age"


# A worker that hung or never started is a failed agent: its room counts a crash.
CRASH_REASONS = frozenset({StopReason.STALE_HEARTBEAT, StopReason.NEVER_READY})


@dataclass(frozen=True)
class SweepPolicy:
    agent_name: str
    grace_seconds: float
    agent_ttl_seconds: float
    settle_seconds: float
    worker_stale_seconds: float
    worker_start_timeout_seconds: float
    max_agent_age_seconds: float
    warm_tasks: int
    slots_per_task: int
    concurrency: int
    safety_margin_seconds: float


class AsyncLiveKit(Protocol):
    """The LiveKit calls the sweep fans out, plus the loop they run on."""

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T: ...

    async def alist_rooms(self) -> list[LiveRoom]: ...

    async def alist_dispatches(self, room: str) -> list[Dispatch]: ...

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch: ...

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None: ...

    async def alist_participants(self, room: str) -> list[LiveParticipant]: ...

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom: ...


class AsyncLiveKitFacade:
    """The async face of a synchronous gateway (the in-memory twin), on a loop of its own."""

    def __init__(self, gateway: LiveKitGateway) -> None:
        self._gateway = gateway
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    async def alist_rooms(self) -> list[LiveRoom]:
        return self._gateway.list_rooms()

    async def alist_dispatches(self, room: str) -> list[Dispatch]:
        return self._gateway.list_dispatches(room)

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return self._gateway.create_dispatch(room, agent_name, metadata)

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None:
        self._gateway.delete_dispatch(room, dispatch_id)

    async def alist_participants(self, room: str) -> list[LiveParticipant]:
        return self._gateway.list_participants(room)

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        return self._gateway.create_room(name, departure_timeout, empty_timeout)


class LoopBridge:
    """A synchronous LiveKitGateway for the sweep's worker threads: each call runs on the
    sweep's loop (where the HTTP session lives) and the thread waits for its answer."""

    def __init__(self, livekit: AsyncLiveKit, loop: asyncio.AbstractEventLoop) -> None:
        self._livekit = livekit
        self._loop = loop

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def list_dispatches(self, room: str) -> list[Dispatch]:
        return self._call(self._livekit.alist_dispatches(room))

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return self._call(self._livekit.acreate_dispatch(room, agent_name, metadata))

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        self._call(self._livekit.adelete_dispatch(room, dispatch_id))

    def list_participants(self, room: str) -> list[LiveParticipant]:
        return self._call(self._livekit.alist_participants(room))

    def list_rooms(self) -> list[LiveRoom]:
        return self._call(self._livekit.alist_rooms())

    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        return self._call(self._livekit.acreate_room(name, departure_timeout, empty_timeout))


MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]


class SweepMetrics:
    """Collects what worker threads count; summed per metric and emitted once, at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: defaultdict[MetricKey, float] = defaultdict(float)

    def count(
        self, name: str, value: float = 1, unit: str = "Count", dimensions: Mapping[str, str] | None = None
    ) -> None:
        with self._lock:
            self._sums[name, unit, tuple(sorted((dimensions or {}).items()))] += value

    def flush(self, sink: MetricsSink) -> dict[str, float]:
        """Emit everything to ``sink``; returns it as ``{"Name[Dim=value]": total}``."""
        with self._lock:
            sums, self._sums = dict(self._sums), defaultdict(float)
        summary: dict[str, float] = {}
        for (name, unit, dimensions), value in sorted(sums.items()):
            sink.count(name, value, unit, dict(dimensions) or None)
            label = ",".join(f"{key}={val}" for key, val in dimensions)
            summary[f"{name}[{label}]" if label else name] = value
        return summary


@dataclass(frozen=True)
class SweepReport:
    rooms_total: int
    rooms_visited: int
    complete: bool
    next_cursor: str | None
    duration_seconds: float
    counts: dict[str, float] = field(default_factory=dict)


# --- pure planning --------------------------------------------------------------------------


def rotate(names: Sequence[str], cursor: str | None) -> list[str]:
    """Names in order, starting at the cursor and wrapping around."""
    start = bisect.bisect_left(names, cursor) if cursor else 0
    return [*names[start:], *names[:start]]


def plan_participant_changes(
    room: Room, participants: Iterable[LiveParticipant], listed_at: float, now: float
) -> list[ParticipantChange]:
    """Joins and leaves the webhooks missed, for a room whose session LiveKit lists.

    A human recorded as present but not listed has left — unless it joined around the time of
    the listing, when the listing may simply predate it. Departed sids never rejoin.
    """
    assert room.sid is not None
    live = {p.sid: p for p in participants if is_human(p.kind)}
    changes = [
        ParticipantChange(
            kind=ChangeKind.JOINED,
            room=room.name,
            room_sid=room.sid,
            sid=sid,
            identity=person.identity,
            at=person.joined_at or now,
            room_created_at=room.session_created_at,
        )
        for sid, person in sorted(live.items())
        if sid not in room.humans and sid not in room.departed
    ]
    changes += [
        ParticipantChange(
            kind=ChangeKind.LEFT,
            room=room.name,
            room_sid=room.sid,
            sid=sid,
            identity=human.identity,
            at=now,
            room_created_at=room.session_created_at,
        )
        for sid, human in sorted(room.humans.items())
        if sid not in live and human.joined_at < listed_at - LISTING_MARGIN_SECONDS
    ]
    return changes


@dataclass(frozen=True)
class DispatchPlan:
    keep: Dispatch | None
    delete: tuple[tuple[Dispatch, DeleteReason], ...]


def plan_dispatch_cleanup(
    ours: Sequence[Dispatch], recorded_id: str | None, now: float, settle_seconds: float
) -> DispatchPlan:
    """At most one dispatch of our agent per room: the one with a running job (the recorded
    one if several), else the newest that may still get a job. A dispatch older than the
    settle time without a live job will never do anything (LiveKit leaves it jobless forever)."""

    def settled(dispatch: Dispatch) -> bool:
        return now - dispatch.created_at >= settle_seconds

    running = [d for d in ours if d.has_running_job]
    hopeful = [d for d in ours if not d.has_running_job and not settled(d)]
    candidates = running or hopeful
    keep = max(candidates, key=lambda d: (d.dispatch_id == recorded_id, d.created_at)) if candidates else None
    delete = tuple(
        (d, DeleteReason.DUPLICATE if d.has_running_job or not settled(d) else DeleteReason.NO_LIVE_JOB)
        for d in ours
        if d is not keep
    )
    return DispatchPlan(keep=keep, delete=delete)


@dataclass(frozen=True)
class TaskStop:
    task: TaskSnapshot
    reason: StopReason
    room: str | None


@dataclass(frozen=True)
class TaskPlan:
    stop: tuple[TaskStop, ...]
    drain: tuple[str, ...]
    gone_workers: tuple[WorkerRecord, ...]
    vanished: tuple[tuple[str, str], ...]  # (room, task arn) whose task ECS no longer lists


def plan_task_cleanup(
    tasks: Sequence[TaskSnapshot],
    workers: Sequence[WorkerRecord],
    rooms: Sequence[Room],
    now: float,
    policy: SweepPolicy,
) -> TaskPlan:
    """What to do about our tasks, judged from ECS, the worker records and the rooms.

    A task is claimed by the room that launched it (task ARN, or launch token while the launch
    is unrecorded) or, for a worker serving jobs, by those jobs.
    """
    listed = {task.task_arn: task for task in tasks}
    records = {worker.task_arn: worker for worker in workers}
    claims: dict[str, str] = {}
    by_token: dict[str, str] = {}
    vanished: list[tuple[str, str]] = []
    for room in rooms:
        agent = room.agent
        if agent is None or agent.task_stopped_at is not None or room.stop_requested_at is not None:
            continue
        if agent.task_arn is None:
            by_token[agent.launch_token] = room.name
            continue
        claims[agent.task_arn] = room.name
        if agent.task_arn not in listed and now - agent.launch_claimed_at >= policy.settle_seconds:
            vanished.append((room.name, agent.task_arn))
    for task in tasks:
        if task.task_arn not in claims and task.launch_token in by_token:
            claims[task.task_arn] = by_token[task.launch_token]

    stops: list[TaskStop] = []
    for task in tasks:
        record = records.get(task.task_arn)
        owner = claims.get(task.task_arn)
        reason = _stop_reason(task, record, owner is not None or bool(record and record.jobs), now, policy)
        if reason is not None:
            stops.append(TaskStop(task, reason, owner))
    stopping = {stop.task.task_arn for stop in stops}

    idle = [
        record
        for record in records.values()
        if record.task_arn in listed
        and record.task_arn not in claims
        and record.task_arn not in stopping
        and not record.jobs
        and now - record.heartbeat_at <= policy.worker_stale_seconds
    ]
    # Asked to drain on an earlier sweep and still there with nothing to do: stop it.
    stops += [
        TaskStop(listed[record.task_arn], StopReason.IDLE, None)
        for record in idle
        if record.draining and record.status is not WorkerStatus.STARTING
    ]
    drain = _surplus_idle(
        [r for r in idle if r.status is WorkerStatus.READY and not r.draining], records, listed, now, policy
    )
    gone = tuple(
        record
        for record in records.values()
        if record.task_arn not in listed and now - record.heartbeat_at > policy.worker_stale_seconds
    )
    return TaskPlan(stop=tuple(stops), drain=drain, gone_workers=gone, vanished=tuple(vanished))


def _stop_reason(
    task: TaskSnapshot, record: WorkerRecord | None, claimed: bool, now: float, policy: SweepPolicy
) -> StopReason | None:
    age = task.age(now)
    if record is not None and record.status in (WorkerStatus.READY, WorkerStatus.DRAINING):
        if now - record.heartbeat_at > policy.worker_stale_seconds:
            return StopReason.STALE_HEARTBEAT
    else:
        # Never reported ready: judged by the time ECS (or its RUNNING event) first showed it.
        seen_at = record.heartbeat_at if record is not None else None
        waited = now - seen_at if seen_at is not None else age
        if waited is not None and waited > policy.worker_start_timeout_seconds:
            return StopReason.NEVER_READY if claimed else StopReason.ORPHAN
        return None
    if claimed and age is not None and age > policy.max_agent_age_seconds:
        return StopReason.MAX_AGE
    return None


def _surplus_idle(
    idle: list[WorkerRecord],
    records: Mapping[str, WorkerRecord],
    listed: Mapping[str, TaskSnapshot],
    now: float,
    policy: SweepPolicy,
) -> tuple[str, ...]:
    """Idle workers to drain, oldest first, keeping WARM_TASKS * SLOTS_PER_TASK free slots."""
    free = sum(
        max(record.capacity - len(record.jobs), 0)
        for record in records.values()
        if record.task_arn in listed and record.is_ready(now, policy.worker_stale_seconds)
    )
    wanted = policy.warm_tasks * policy.slots_per_task
    surplus: list[str] = []
    for record in sorted(idle, key=lambda r: listed[r.task_arn].created_at or 0.0):
        if free - record.capacity < wanted:
            break
        surplus.append(record.task_arn)
        free -= record.capacity
    return tuple(surplus)


# --- execution ------------------------------------------------------------------------------


class Sweeper:
    def __init__(
        self,
        ports: Ports,
        livekit: AsyncLiveKit,
        controller_for: Callable[[Ports], RoomController],
        policy: SweepPolicy,
    ) -> None:
        self._ports = ports
        self._livekit = livekit
        self._controller_for = controller_for
        self._policy = policy

    def sweep(self, remaining_seconds: Callable[[], float]) -> SweepReport:
        """One sweep; ``remaining_seconds`` is the Lambda's time left (context)."""
        return self._livekit.run(self._sweep(remaining_seconds))

    async def _sweep(self, remaining_seconds: Callable[[], float]) -> SweepReport:
        started = time.monotonic()
        metrics = SweepMetrics()
        ports = replace(
            self._ports, livekit=LoopBridge(self._livekit, asyncio.get_running_loop()), metrics=metrics
        )
        with ThreadPoolExecutor(self._policy.concurrency, thread_name_prefix="sweep") as pool:
            run = _SweepRun(ports, self._livekit, self._controller_for(ports), self._policy, pool, metrics)
            visited, total, cursor = await run.execute(remaining_seconds)
        duration = time.monotonic() - started
        metrics.count("SweepDurationSeconds", duration, "Seconds")
        metrics.count("RoomsSwept", visited)
        counts = metrics.flush(self._ports.metrics)
        report = SweepReport(
            rooms_total=total,
            rooms_visited=visited,
            complete=visited == total,
            next_cursor=cursor,
            duration_seconds=duration,
            counts=counts,
        )
        log.info("sweep done", extra={"report": asdict(report)})
        return report


class _SweepRun:
    """One sweep's state: the loop's thread pool, the bridged controller, the listings."""

    def __init__(
        self,
        ports: Ports,
        livekit: AsyncLiveKit,
        controller: RoomController,
        policy: SweepPolicy,
        pool: ThreadPoolExecutor,
        metrics: SweepMetrics,
    ) -> None:
        self.ports = ports
        self.livekit = livekit
        self.controller = controller
        self.policy = policy
        self.pool = pool
        self.metrics = metrics
        self.live: dict[str, LiveRoom] | None = None
        self.listed_at = 0.0

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(call, *args))

    def now(self) -> float:
        return self.ports.clock.now()

    async def execute(self, remaining_seconds: Callable[[], float]) -> tuple[int, int, str | None]:
        # ECS before the index: a task listed was launched before its room record was read,
        # so the record (or its launch token) claims it.
        tasks = await self._list_tasks()
        rooms: list[Room] = await self.blocking(lambda: list(self.ports.rooms.rooms_needing_attention()))
        workers: list[WorkerRecord] = await self.blocking(lambda: list(self.ports.workers.live_workers()))
        self._count_gauges(rooms, tasks)
        if tasks is not None:
            await self._clean_tasks(tasks, workers, rooms)
        await self._list_live_rooms()
        return await self._sweep_rooms(rooms, remaining_seconds)

    # --- listings --------------------------------------------------------------------------

    async def _list_tasks(self) -> list[TaskSnapshot] | None:
        try:
            return await self.blocking(self.ports.runner.list_tasks)
        except RunnerUnavailable:
            self._listing_failed("ecs")
            return None

    async def _list_live_rooms(self) -> None:
        self.listed_at = self.now()
        try:
            self.live = {room.name: room for room in await self.livekit.alist_rooms()}
        except LiveKitUnavailable:
            self._listing_failed("livekit")

    def _listing_failed(self, source: str) -> None:
        log.exception(
            "sweep listing failed: skipping what depends on it until the next sweep", extra={"source": source}
        )
        self.metrics.count("SweepListingFailures", dimensions={"Source": source})
        self.metrics.count("SweepErrors")

    def _count_gauges(self, rooms: Sequence[Room], tasks: Sequence[TaskSnapshot] | None) -> None:
        states = {state: 0 for state in sorted(NEEDS_ATTENTION | {RoomState.IDLE})}
        for room in rooms:
            states[room.state] = states.get(room.state, 0) + 1
        for state, number in states.items():
            self.metrics.count("Rooms", number, dimensions={"State": state.value})
        active = sum(
            1
            for r in rooms
            if r.agent is not None and r.state in (RoomState.STARTING, RoomState.ACTIVE, RoomState.GRACE)
        )
        self.metrics.count("ActiveAgents", active)
        if tasks is not None:
            now = self.now()
            ages = [age for age in (task.age(now) for task in tasks) if age is not None]
            self.metrics.count("RunningTasks", len(tasks))
            self.metrics.count("OldestAgentAgeSeconds", max(ages, default=0.0), "Seconds")

    # --- tasks -----------------------------------------------------------------------------

    async def _clean_tasks(
        self, tasks: list[TaskSnapshot], workers: list[WorkerRecord], rooms: list[Room]
    ) -> None:
        plan = plan_task_cleanup(tasks, workers, rooms, self.now(), self.policy)
        await asyncio.gather(
            *(self._guarded(self._stop_task, stop, stop.task.task_arn) for stop in plan.stop),
            *(self._guarded(self._drain, arn, arn) for arn in plan.drain),
            *(self._guarded(self._forget_worker, record, record.task_arn) for record in plan.gone_workers),
        )
        if plan.vanished:
            await self._settle_vanished(plan.vanished, {w.task_arn: w for w in workers})

    async def _guarded(self, step: Callable[[T], object], subject: T, task_arn: str) -> None:
        """One task's cleanup step; its failure is logged and counted, and the others go on."""
        try:
            await self.blocking(step, subject)
        except Exception:
            log.exception(
                "task cleanup step failed; the next sweep tries again", extra={"task_arn": task_arn}
            )
            self.metrics.count("SweepErrors")

    def _stop_task(self, stop: TaskStop) -> None:
        task = stop.task
        log.warning(
            "stopping agent task",
            extra={
                "task_arn": task.task_arn,
                "reason": stop.reason.value,
                "room": stop.room,
                "age": task.age(self.now()),
            },
        )
        self.ports.runner.stop(task.task_arn, f"sweeper: {stop.reason.value}")
        self.ports.workers.mark_draining(task.task_arn)
        self.metrics.count("TasksStopped", dimensions={"Reason": stop.reason.value})
        if stop.room is not None:
            self.controller.task_stopped(
                stop.room, task.task_arn, task.launch_token, stop.reason in CRASH_REASONS
            )

    def _drain(self, task_arn: str) -> None:
        log.info("draining idle worker beyond the warm pool", extra={"task_arn": task_arn})
        self.ports.workers.mark_draining(task_arn)
        self.metrics.count("TasksDrained")

    def _forget_worker(self, record: WorkerRecord) -> None:
        """ECS no longer runs it and it stopped heartbeating: out of the live index."""
        self.ports.workers.put_worker(record.model_copy(update={"status": WorkerStatus.STOPPED}))

    async def _settle_vanished(
        self, vanished: Sequence[tuple[str, str]], workers: Mapping[str, WorkerRecord]
    ) -> None:
        """Rooms whose task ECS no longer lists: learn how it stopped, as its event would say."""
        try:
            found = await self.blocking(self.ports.runner.describe_tasks, [arn for _, arn in vanished])
        except RunnerUnavailable:
            self._listing_failed("ecs")
            return
        described = {task.task_arn: task for task in found}
        for room, arn in vanished:
            task = described.get(arn)
            if task is not None and task.last_status != "STOPPED":
                continue  # still stopping: its STOPPED event, or the next sweep, will tell
            worker = workers.get(arn)
            crashed = task is not None and is_crash(
                task.stop_code, task.exit_codes, draining=worker is not None and worker.draining
            )
            log.warning(
                "agent task stopped without an event reaching us", extra={"room": room, "task_arn": arn}
            )
            self.metrics.count("MissedTaskStops")
            await self._guarded(
                partial(self.controller.task_stopped, task_arn=arn, launch_token=None, crashed=crashed),
                room,
                arn,
            )

    # --- rooms -----------------------------------------------------------------------------

    async def _sweep_rooms(
        self, rooms: list[Room], remaining_seconds: Callable[[], float]
    ) -> tuple[int, int, str | None]:
        tracked = {room.name: room for room in rooms}
        names = sorted(set(tracked) | set(self.live or ()))
        cursor = await self.blocking(self.ports.rooms.get_sweep_cursor)
        slots = asyncio.Semaphore(self.policy.concurrency)
        pending: list[asyncio.Task[None]] = []
        next_cursor: str | None = None
        for name in rotate(names, cursor):
            await slots.acquire()
            if remaining_seconds() < self.policy.safety_margin_seconds:
                slots.release()
                next_cursor = name
                log.warning("sweep stopped before the Lambda deadline", extra={"resume_at": name})
                self.metrics.count("SweepIncomplete")
                break
            pending.append(asyncio.create_task(self._visit(name, tracked.get(name), slots)))
        await asyncio.gather(*pending)
        if next_cursor != cursor:
            await self.blocking(self.ports.rooms.put_sweep_cursor, next_cursor)
        return len(pending), len(names), next_cursor

    async def _visit(self, name: str, room: Room | None, slots: asyncio.Semaphore) -> None:
        try:
            live_room = self.live.get(name) if self.live is not None else None
            if self.live is None:
                if room is not None:
                    await self._reconcile(room)
            elif room is None:
                if live_room is not None:
                    await self._visit_untracked(live_room)
            elif live_room is None:
                await self._room_gone(room)
            else:
                await self._sweep_tracked(room, live_room)
        except Exception:
            log.exception("sweeping a room failed; the next sweep tries again", extra={"room": name})
            self.metrics.count("SweepErrors")
        finally:
            slots.release()

    async def _our_dispatches(self, room: str) -> list[Dispatch]:
        return [
            d for d in await self.livekit.alist_dispatches(room) if d.agent_name == self.policy.agent_name
        ]

    async def _reconcile(self, room: Room) -> None:
        due = grace_expired(room, self.now())
        after = await self.blocking(self.controller.reconcile, room.name, room)
        if due and (after is None or after.state is not RoomState.GRACE):
            log.info(
                "grace period ended by the sweep (its timer was late or lost)", extra={"room": room.name}
            )
            self.metrics.count("GraceExpiries")

    async def _room_gone(self, room: Room) -> None:
        if room.sid is None or room.updated_at >= self.listed_at - LISTING_MARGIN_SECONDS:
            await self._reconcile(room)  # too fresh to trust the listing's word on it
            return
        log.warning(
            "room no longer exists in LiveKit: closing it", extra={"room": room.name, "room_sid": room.sid}
        )
        self.metrics.count("RoomsGone")
        await self.blocking(self.controller.room_gone, room.name, room.sid)

    async def _sweep_tracked(self, room: Room, live_room: LiveRoom) -> None:
        listed_at = self.now()
        participants, ours = await asyncio.gather(
            self.livekit.alist_participants(live_room.name), self._our_dispatches(room.name)
        )
        if room.sid != live_room.sid:
            # Recorded exactly as a room_started webhook would be: a newer session replaces the
            # old one (whose agent reconcile then stops), a listing older than the record is
            # ignored. The sweep never makes up a session of its own.
            observed = await self.blocking(self.controller.observe_live_room, live_room)
            if observed is None or observed.sid != live_room.sid:
                await self._reconcile(room)
                return
            log.warning(
                "room has a new LiveKit session: ending the old one",
                extra={"room": room.name, "old_sid": room.sid, "room_sid": live_room.sid},
            )
            self.metrics.count("RoomsGone")
            room = observed
        room = await self.blocking(self._apply_changes, room, participants, listed_at)
        plan = plan_dispatch_cleanup(
            ours, room.agent.dispatch_id if room.agent else None, self.now(), self.policy.settle_seconds
        )
        await self._delete_dispatches(room.name, plan.delete)
        room = await self.blocking(
            self._follow_dispatch, room, plan, {d.dispatch_id for d in ours}, listed_at
        )
        await self._reconcile(room)

    def _apply_changes(self, room: Room, participants: list[LiveParticipant], listed_at: float) -> Room:
        for change in plan_participant_changes(room, participants, listed_at, self.now()):
            log.warning(
                f"sweep found a missed {change.kind.value}",
                extra={"room": room.name, "participant_sid": change.sid, "identity": change.identity},
            )
            self.metrics.count("ParticipantsReconciled", dimensions={"Change": change.kind.value})
            room = self.ports.rooms.observe_participant(change)
        return room

    def _follow_dispatch(self, room: Room, plan: DispatchPlan, listed: set[str], listed_at: float) -> Room:
        """Keep the room's record of its dispatch true after the cleanup: adopt the survivor,
        or forget a dead one so reconcile dispatches again once a worker is ready."""
        agent = room.agent
        if agent is None or agent.dispatch_id is None:
            return room
        deleted = {d.dispatch_id for d, _ in plan.delete}
        vanished = (
            agent.dispatch_id not in listed
            and agent.dispatched_at is not None
            and agent.dispatched_at < listed_at - self.policy.settle_seconds
        )
        if agent.dispatch_id not in deleted and not vanished:
            return room
        survivor = plan.keep.dispatch_id if plan.keep else None
        log.warning(
            "room's dispatch was dead or gone",
            extra={"room": room.name, "dispatch_id": agent.dispatch_id, "adopted": survivor},
        )
        return self.controller.dispatch_replaced(room.name, agent.dispatch_id, survivor) or room

    async def _delete_dispatches(self, room: str, doomed: Iterable[tuple[Dispatch, DeleteReason]]) -> None:
        for dispatch, reason in doomed:
            await self.livekit.adelete_dispatch(room, dispatch.dispatch_id)
            log.warning(
                "dispatch deleted",
                extra={"room": room, "dispatch_id": dispatch.dispatch_id, "reason": reason.value},
            )
            self.metrics.count("DispatchesDeleted", dimensions={"Reason": reason.value})

    async def _visit_untracked(self, live_room: LiveRoom) -> None:
        """A room we do not track: humans there lost their first join (adopt the room through
        the same observe path as webhooks); otherwise only our agent's leftovers matter."""
        participants = (
            await self.livekit.alist_participants(live_room.name) if live_room.num_participants else []
        )
        if any(is_human(p.kind) for p in participants):
            adopted = await self.blocking(self.controller.observe_live_room, live_room)
            if adopted is not None and adopted.sid == live_room.sid:
                log.warning(
                    "untracked room with humans: adopting it (its first join was lost)",
                    extra={"room": live_room.name, "room_sid": live_room.sid},
                )
                self.metrics.count("RoomsAdopted")
                await self._sweep_tracked(adopted, live_room)
                return
        ours = await self._our_dispatches(live_room.name)
        if not ours:
            return
        record = await self.blocking(self.ports.rooms.get, live_room.name)
        now = self.now()
        plan = plan_dispatch_cleanup(ours, None, now, self.policy.settle_seconds)
        doomed = list(plan.delete)
        last_activity = max(
            [live_room.created_at, *(d.created_at for d in ours), *(p.joined_at for p in participants)]
            + ([record.updated_at] if record is not None else [])
        )
        # A room we know emptied gets the grace period; one we never tracked, the agent TTL.
        idle_limit = self.policy.grace_seconds if record is not None else self.policy.agent_ttl_seconds
        humans = any(is_human(p.kind) for p in participants)
        if plan.keep is not None and not humans and now - last_activity > idle_limit:
            doomed.append((plan.keep, DeleteReason.NO_HUMANS))
        await self._delete_dispatches(live_room.name, doomed)
