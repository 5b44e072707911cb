"""The warm pool, decided from worker records alone: pure, tested by tables.

Workers are fungible: a room's agent runs on whichever worker LiveKit hands its job to, so the
control plane reasons in *slots*. A room takes a slot by a conditional write on one ready
worker's ``reserved`` map (``WorkerRegistry.reserve_slot``) before any dispatch exists, because
the open-source LiveKit server drops a job no worker has room for. The pool keeps
``warm_slots`` free slots ready at all times (a fixed ``WARM_TASKS``, a time-of-day floor, or
an adaptive size from the arrival rate and the measured cold start), never runs more than
``max_tasks`` tasks, and scales in only workers that host nothing (drained first: the worker
finishes and exits by itself, so a job is never cut).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from control_plane.worker_protocol import WorkerRecord, WorkerStatus

# Arrivals are counted per minute; the adaptive size looks at this many recent minutes, kept
# in a ring of slots in the pool item (each slot holds its minute, so stale slots are ignored).
ARRIVAL_WINDOW_MINUTES = 15
ARRIVAL_RING = 16
# Until a cold start is measured, assume a typical Fargate start of a speech-model image.
DEFAULT_COLD_START_SECONDS = 60.0
# Weight of a new cold-start measurement in the running average.
COLD_START_SMOOTHING = 0.2

_SCHEDULE_ENTRY = re.compile(r"^\s*(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})=(\d+)\s*$")


@dataclass(frozen=True)
class ScheduleWindow:
    """``start``..``end`` minutes of the UTC day (end may wrap past midnight) with a floor."""

    start: int
    end: int
    warm_tasks: int

    def covers(self, minute_of_day: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute_of_day < self.end
        return minute_of_day >= self.start or minute_of_day < self.end


def parse_schedule(text: str) -> tuple[ScheduleWindow, ...]:
    """``"08:00-18:00=4, 18:00-23:00=2"`` (UTC) as windows; raises ValueError on anything else."""
    windows: list[ScheduleWindow] = []
    for entry in filter(str.strip, text.split(",")):
        match = _SCHEDULE_ENTRY.match(entry)
        if match is None:
            raise ValueError(f"schedule entry {entry.strip()!r} is not HH:MM-HH:MM=N (UTC)")
        start_h, start_m, end_h, end_m, tasks = (int(part) for part in match.groups())
        if start_h > 24 or end_h > 24 or start_m > 59 or end_m > 59:
            raise ValueError(f"schedule entry {entry.strip()!r} has an impossible time")
        windows.append(ScheduleWindow(start_h * 60 + start_m, end_h * 60 + end_m, tasks))
    return tuple(windows)


@dataclass(frozen=True)
class PoolPolicy:
    warm_tasks: int = 0
    slots_per_task: int = 1
    jobs_per_task: int = 1
    max_tasks: int = 100
    adaptive: bool = False
    target_wait_share: float = 0.05
    schedule: tuple[ScheduleWindow, ...] = ()
    worker_stale_seconds: float = 45.0
    # A task launched but not yet ready counts toward capacity for this long.
    start_timeout_seconds: float = 300.0


@dataclass(frozen=True)
class Demand:
    """What the pool state item remembers: first-join arrivals per minute and cold starts."""

    arrivals: Mapping[int, int] = field(default_factory=dict)
    cold_start_seconds: float = DEFAULT_COLD_START_SECONDS

    @classmethod
    def stored(cls, ring: Mapping[int, tuple[int, int]], cold_start_seconds: float | None) -> Demand:
        """From the pool item as stored: its arrival ring, its average if one was measured yet."""
        cold = DEFAULT_COLD_START_SECONDS if cold_start_seconds is None else cold_start_seconds
        return cls(arrivals_from_ring(ring), cold)

    def arrival_rate(self, now: float) -> float:
        """Arrivals per second over the last full minutes of the window."""
        current = int(now // 60)
        recent = [
            count for minute, count in self.arrivals.items() if current - minute < ARRIVAL_WINDOW_MINUTES
        ]
        return sum(recent) / (ARRIVAL_WINDOW_MINUTES * 60.0)


def arrivals_from_ring(ring: Mapping[int, tuple[int, int]]) -> dict[int, int]:
    """The stored ring (slot -> (minute, count)) as minute -> count."""
    return {minute: count for minute, count in ring.values()}


def smoothed_cold_start(previous: float, measured: float) -> float:
    return previous + COLD_START_SMOOTHING * (measured - previous)


def poisson_quantile(mean: float, share: float) -> int:
    """The smallest k with P(N > k) <= share for N ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    term = math.exp(-mean)
    cumulative = term
    k = 0
    while 1.0 - cumulative > share and k < 10_000:
        k += 1
        term *= mean / k
        cumulative += term
    return k


def warm_slots(policy: PoolPolicy, demand: Demand, now: float) -> int:
    """Free slots to keep ready now. Adaptive: enough that a share of at most
    ``target_wait_share`` of first joins finds none — while the slots taken in one cold start
    are replaced, arrivals in that time are Poisson with mean rate x cold start. Never below
    ``WARM_TASKS`` or the schedule's floor."""
    floor = policy.warm_tasks
    minute = int(now % 86400 // 60)
    for window in policy.schedule:
        if window.covers(minute):
            floor = max(floor, window.warm_tasks)
    slots = floor * policy.slots_per_task
    if policy.adaptive:
        # With k free slots the (k+1)th arrival within one cold start waits: keep one more than
        # the quantile of arrivals, so P(arrivals >= slots) <= the share.
        expected = demand.arrival_rate(now) * demand.cold_start_seconds
        if expected > 0:
            slots = max(slots, poisson_quantile(expected, policy.target_wait_share) + 1)
    return slots


def usable(worker: WorkerRecord, now: float, policy: PoolPolicy) -> bool:
    """A worker that may take a room: ready, not draining, heartbeat fresh."""
    return worker.is_ready(now, policy.worker_stale_seconds)


def pending(worker: WorkerRecord, now: float, policy: PoolPolicy) -> bool:
    """A task launched and not ready yet, still within its start timeout."""
    return (
        worker.status is WorkerStatus.STARTING
        and not worker.draining
        and now - worker.heartbeat_at <= policy.start_timeout_seconds
    )


def slot_candidates(
    workers: Iterable[WorkerRecord], now: float, policy: PoolPolicy, prefer: str | None = None
) -> list[WorkerRecord]:
    """Workers a room may reserve a slot on, best first: the task launched for the room, then
    the fullest (packing rooms onto few tasks leaves whole tasks idle to scale in), then by task
    ARN, so every caller tries them in the same order."""
    open_workers = [w for w in workers if usable(w, now, policy) and w.free_slots(policy.jobs_per_task) > 0]
    return sorted(
        open_workers,
        key=lambda w: (w.task_arn != prefer, w.free_slots(policy.jobs_per_task), w.task_arn),
    )


@dataclass(frozen=True)
class PoolPlan:
    launch: int
    drain: tuple[str, ...]
    free_slots: int
    pending_slots: int
    wanted_slots: int
    live_tasks: int
    exhausted: bool


def plan_pool(
    workers: Sequence[WorkerRecord],
    demand: Demand,
    now: float,
    policy: PoolPolicy,
    held: frozenset[str] = frozenset(),
    live: int | None = None,
) -> PoolPlan:
    """How many tasks to launch for the pool and which idle workers to drain.

    ``held``: tasks launched for a room still waiting to take them; theirs, not the pool's.
    ``live``: the tasks counted against ``max_tasks`` if known (the listing may be only the
    workers with a free slot or starting); else counted on the listing.

    Capacity counted: free slots on usable workers plus the slots of tasks still starting.
    Wanted: the warm slots. A room that finds no slot launches its own task (its launch is
    among the starting ones), so rooms waiting are not wanted twice. Launches stop at
    ``max_tasks`` live tasks (``exhausted``). Surplus: whole idle workers (no job, no slot)
    beyond the wanted free slots, used ones first, drained, never stopped with a job.
    """
    counted = live_tasks(workers, now, policy) if live is None else live
    listed = [w for w in workers if w.status is not WorkerStatus.STOPPED and w.task_arn not in held]
    free = sum(w.free_slots(policy.jobs_per_task) for w in listed if usable(w, now, policy))
    per_task = min(policy.slots_per_task, policy.jobs_per_task)
    pending_slots = per_task * sum(1 for w in listed if pending(w, now, policy))
    wanted = warm_slots(policy, demand, now)
    deficit = wanted - free - pending_slots
    launch = math.ceil(deficit / per_task) if deficit > 0 else 0
    room_left = max(0, policy.max_tasks - counted)
    exhausted = launch > room_left
    launch = min(launch, room_left)
    # Spent workers (JOBS_PER_TASK reached) that host nothing are recycled whatever the need.
    drain = [w.task_arn for w in listed if usable(w, now, policy) and not w.rooms() and spent(w, policy)]
    # Scale in counting ready slots alone (a ready worker is never drained for one on the way),
    # and, adaptive, only beyond one task's slots of margin: a dip in the estimate must not
    # drain workers only to relaunch them a minute later.
    surplus = free - wanted - (per_task if policy.adaptive else 0)
    if surplus > 0:
        idle = sorted(
            (w for w in listed if usable(w, now, policy) and not w.rooms() and not spent(w, policy)),
            key=lambda w: (w.assigned == 0, w.launched_at or w.heartbeat_at),
        )
        for worker in idle:
            spare = worker.free_slots(policy.jobs_per_task)
            if spare > surplus:
                break
            drain.append(worker.task_arn)
            surplus -= spare
    return PoolPlan(
        launch=launch,
        drain=tuple(drain),
        free_slots=free,
        pending_slots=pending_slots,
        wanted_slots=wanted,
        live_tasks=counted,
        exhausted=exhausted,
    )


def live_tasks(workers: Iterable[WorkerRecord], now: float, policy: PoolPolicy) -> int:
    """Tasks counted against ``max_tasks``: not stopped, and hosting rooms or alive (ready or
    starting within its timeout). One pass, no plan: a room's launch needs only this."""
    return sum(
        1 for w in workers if w.status is not WorkerStatus.STOPPED and (w.rooms() or _alive(w, now, policy))
    )


def _alive(worker: WorkerRecord, now: float, policy: PoolPolicy) -> bool:
    return usable(worker, now, policy) or pending(worker, now, policy)


def spent(worker: WorkerRecord, policy: PoolPolicy) -> bool:
    """A worker that may take no more rooms in its life (``JOBS_PER_TASK``): recycle it once
    it hosts nothing."""
    return worker.assigned >= policy.jobs_per_task
