"""Carries out the warm pool's decisions (``control_plane.pool``) against the ports.

A slot decision reads the room's own task and a few workers of the slot index
(``control_plane.slot_index``), never every live worker: its reads stay the same at 10 workers
or 10,000. The pool sizes itself on the index (free slots, tasks starting) and the shared
live-task count.

Everything here is safe to repeat and to run in many Lambdas at once: a slot is taken only by
a conditional write on one worker; pool launches use a launch token derived from the listing
they were planned on (two Lambdas planning on the same listing launch once, ECS ``clientToken``);
every launch first takes tokens from the shared launch limiter; scale-in only sets ``draining``
on a worker that hosts nothing, by a conditional write, and the worker exits by itself.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from control_plane.pool import PoolPlan, PoolPolicy, live_tasks, plan_pool, slot_candidates, spent, usable
from control_plane.ports import (
    LaunchedTask,
    LaunchFailed,
    LaunchGrant,
    LaunchOutcomeUnknown,
    ObservedTaskState,
    Ports,
)
from control_plane.reconcile import holds_slot_on
from control_plane.shards import shard_of
from control_plane.slot_index import SLOT_SHARDS, drifted
from control_plane.worker_protocol import WakeRooms, WorkerRecord

log = logging.getLogger(__name__)

# RunTask launches at most this many tasks per call.
RUN_TASK_MAX_COUNT = 10
# A room held back by MAX_TASKS tries again after this long even if no slot frees to wake it.
EXHAUSTED_RETRY_SECONDS = 15.0
# A failed pool launch is retried after this long (a WakeRooms message replenishes the pool).
POOL_LAUNCH_RETRY_SECONDS = 10
# How many waiting rooms one wake reconciles at most (more wait for the next wake or sweep).
WAKE_BATCH = 50
# Workers one query of a slot index shard reads at most: a decision's reads stay this many.
OPEN_LIMIT = 3


def with_slot(workers: Sequence[WorkerRecord], task_arn: str, room: str, now: float) -> list[WorkerRecord]:
    """A listing with the slot just reserved applied (where it does not show yet: the index is
    eventually consistent), so planning on it needs no new query."""
    return [
        w.model_copy(update={"reserved": {**w.reserved, room: now}, "assigned": w.assigned + 1})
        if w.task_arn == task_arn and room not in w.reserved
        else w
        for w in workers
    ]


@dataclass(frozen=True)
class LaunchBlocked:
    """No launch now (the limiter's wait, or the pool is at ``MAX_TASKS``): ask again after this."""

    retry_after: float


class Capacity:
    def __init__(self, ports: Ports, policy: PoolPolicy) -> None:
        self._ports = ports
        self._policy = policy

    @property
    def policy(self) -> PoolPolicy:
        return self._policy

    def own_task(self, task_arn: str | None) -> WorkerRecord | None:
        """The task a room already counts on (launched for it, or holding its slot): one read."""
        return self._ports.workers.get_worker(task_arn) if task_arn else None

    def candidates(self, room: str | None, own: WorkerRecord | None = None) -> list[WorkerRecord]:
        """Workers ``room`` may take a slot on, best first: its own task if open; else the
        fullest few of the first slot index shard, from the room's own on, that has one. At
        most ``OPEN_LIMIT`` items per shard read, and no shard once one had a candidate."""
        if own is not None and self._open_for(room, [own]):
            return [own]
        start = shard_of(room or "", SLOT_SHARDS)
        for step in range(SLOT_SHARDS):
            listed = self._ports.workers.open_workers((start + step) % SLOT_SHARDS, OPEN_LIMIT)
            found = self._open_for(room, listed)
            if found:
                return found
        return []

    def slot_open(self, room: str | None = None) -> bool:
        """A slot ``room`` may take is free now (one a waiting room's own task holds is not)."""
        return bool(self.candidates(room))

    def live_count(self) -> int:
        """Tasks counted against ``MAX_TASKS``: the shared live-task count (one item); without
        one (the simulator, the local stack) a listing of every worker."""
        if self._ports.tasks is not None:
            return len(self._ports.tasks.live())
        return live_tasks(self._ports.workers.live_workers(), self._ports.clock.now(), self._policy)

    def _open_for(
        self, room: str | None, workers: Sequence[WorkerRecord], prefer: str | None = None
    ) -> list[WorkerRecord]:
        now = self._ports.clock.now()
        candidates = slot_candidates(workers, now, self._policy, prefer=prefer)
        return [w for w in candidates if not self._held_for_another(w, room)]

    def held(self, workers: Sequence[WorkerRecord]) -> frozenset[str]:
        """Idle tasks launched for a room still waiting to take them: not the pool's to count."""
        return frozenset(w.task_arn for w in workers if not w.rooms() and self._held_for_another(w, None))

    def take_slot(self, room: str, prefer: str | None, workers: Sequence[WorkerRecord]) -> str | None:
        """Reserve a slot for ``room`` on the best of ``workers`` (its :meth:`candidates`); the
        task ARN, or None if every candidate was taken first (each try is a conditional write)."""
        now = self._ports.clock.now()
        for worker in self._open_for(room, workers, prefer):
            if self._ports.workers.reserve_slot(worker, room, now, self._policy.jobs_per_task):
                log.info("slot reserved", extra={"room": room, "task_arn": worker.task_arn})
                return worker.task_arn
        return None

    def reap_orphaned_slots(self, workers: Sequence[WorkerRecord], lease: float) -> int:
        """Free reservations older than the claim lease whose room does not point back: taking
        a slot and recording it in the room are two writes, and when the second fails the slot
        would pin the worker for hours. The room is re-read before each reap, and the reap is
        conditional on that very reservation, so one made or recorded meanwhile stays."""
        now = self._ports.clock.now()
        reaped = 0
        for worker in workers:
            for room, reserved_at in sorted(worker.reserved.items()):
                if now - reserved_at < lease or room in worker.jobs:
                    continue
                if holds_slot_on(self._ports.rooms.get(room), worker.task_arn):
                    continue
                if self._ports.workers.reap_slot(
                    worker.task_arn, room, reserved_at, self._policy.jobs_per_task
                ):
                    reaped += 1
                    log.warning(
                        "orphaned slot reservation freed", extra={"room": room, "task_arn": worker.task_arn}
                    )
        if reaped:
            self._ports.metrics.count("OrphanedSlotsReaped", reaped)
            self._wake()
        return reaped

    def refile_drifted(self, workers: Sequence[WorkerRecord]) -> int:
        """The sweep's backstop for the slot index: a worker whose own write (its status, its
        jobs) left its index keys behind is re-filed, conditional on the record as listed."""
        refiled = 0
        for worker in workers:
            if drifted(worker, self._policy.jobs_per_task) and self._ports.workers.refile_slot(
                worker, self._policy.jobs_per_task
            ):
                refiled += 1
        if refiled:
            self._ports.metrics.count("SlotIndexRefiled", refiled)
            log.info("slot index re-filed", extra={"workers": refiled})
        return refiled

    def _held_for_another(self, worker: WorkerRecord, room: str | None) -> bool:
        """A fresh task launched for a room still waiting is that room's first: taking it would
        leave that room waiting on a task it no longer has."""
        owner = worker.launched_for
        return (
            owner is not None
            and owner != room
            and worker.assigned == 0
            and self._ports.workers.is_waiting(owner)
        )

    def exhausted_for(self, room: str) -> bool:
        """No slot ``room`` may take is free and no task may be launched for it (``MAX_TASKS``)."""
        if self.slot_open(room):
            return False
        return self.live_count() >= self._policy.max_tasks

    def launch_for_room(self, room: str, launch_token: str) -> LaunchedTask | LaunchBlocked:
        """Start one task for a room that found no slot, if ``MAX_TASKS`` and the limiter allow."""
        now = self._ports.clock.now()
        live = self.live_count()
        if live >= self._policy.max_tasks:
            self._exhausted(room, live)
            return LaunchBlocked(EXHAUSTED_RETRY_SECONDS)
        if not self._count([launch_token], now):
            self._exhausted(room, live)
            return LaunchBlocked(EXHAUSTED_RETRY_SECONDS)
        grant = self._grant(1, now)
        if grant.tasks < 1:
            self._uncount([launch_token])
            self._ports.metrics.count("LaunchesQueued")
            log.info(
                "launch queued by the launch limiter", extra={"room": room, "retry_after": grant.retry_after}
            )
            return LaunchBlocked(max(grant.retry_after, 1.0))
        try:
            (launched,) = self._ports.runner.launch(room, launch_token)[:1]
        except LaunchFailed:
            self._uncount([launch_token])  # ECS surely started nothing
            raise
        self._confirm([launch_token], [launched], now)
        self._record_starting([launched], now, room)
        return launched

    def _exhausted(self, room: str, live_tasks: int) -> None:
        self._ports.metrics.count("PoolExhausted")
        log.warning(
            "pool exhausted: room waits for a slot",
            extra={"room": room, "live_tasks": live_tasks, "max_tasks": self._policy.max_tasks},
        )

    def _count(self, keys: Sequence[str], now: float) -> list[str]:
        """The launches the shared live-task count admits under ``MAX_TASKS`` (all without one)."""
        tasks = self._ports.tasks
        return list(keys) if tasks is None else tasks.reserve(keys, self._policy.max_tasks, now)

    def _uncount(self, keys: Sequence[str]) -> None:
        if keys and self._ports.tasks is not None:
            self._ports.tasks.release(keys)

    def _confirm(self, keys: Sequence[str], launched: Sequence[LaunchedTask], now: float) -> None:
        """Count the tasks by ARN, so their STOPPED events release them; if this write fails the
        sweep's heal counts them from ECS's listing."""
        if self._ports.tasks is None:
            return
        try:
            self._ports.tasks.confirm(keys, [task.task_arn for task in launched], now)
        except Exception:
            log.exception("live-task count not confirmed: the sweep heals it", extra={"keys": list(keys)})

    def replenish(self, workers: Sequence[WorkerRecord] | None = None) -> PoolPlan:
        """Launch what the pool lacks and drain what it has too much of (idle workers only),
        planned on ``workers`` (the slot index's by default: free slots, tasks starting)."""
        now = self._ports.clock.now()
        listed = self._ports.workers.pool_workers() if workers is None else list(workers)
        plan = self._plan(listed, now)
        if plan.exhausted:
            self._ports.metrics.count("PoolExhausted")
        self._launch_pool(plan.launch, listed, now)
        for task_arn in plan.drain:
            self.retire(task_arn, "pool surplus")
        return plan

    def retire(self, task_arn: str, reason: str) -> bool:
        """Drain a worker that hosts nothing (a conditional write, so no slot is taken meanwhile):
        it stops taking jobs and exits by itself; the sweep stops it if it is still there next
        time. Never StopTask here: a job LiveKit handed it meanwhile finishes first."""
        if not self._ports.workers.drain_if_idle(task_arn):
            return False
        self._ports.metrics.count("WorkersRetired")
        log.info("idle worker retired", extra={"task_arn": task_arn, "reason": reason})
        return True

    def release(self, room: str, task_arn: str, slot_reserved: bool) -> None:
        """The room's agent is gone: free its slot and retire the worker unless the pool wants
        it (it may take another room: not spent, and the pool is short of free slots)."""
        workers = self._ports.workers
        jobs_per_task = self._policy.jobs_per_task
        after = (
            workers.release_slot(task_arn, room, jobs_per_task)
            if slot_reserved
            else workers.get_worker(task_arn)
        )
        if after is not None and after.rooms() - {room}:
            self._wake()
            return
        now = self._ports.clock.now()
        keep = False
        if after is not None and not spent(after, self._policy) and usable(after, now, self._policy):
            # Kept for a room waiting for a slot, or if without it the pool would be short.
            plan = self._plan(workers.pool_workers(), now)
            spare = after.free_slots(self._policy.jobs_per_task)
            short = plan.free_slots + plan.pending_slots - spare < plan.wanted_slots
            keep = short or bool(workers.waiting_rooms())
        if keep:
            log.info("worker kept warm", extra={"task_arn": task_arn, "room": room})
            self._wake()
            return
        # Between the release and here another Lambda may have reserved the worker, or LiveKit
        # handed it a job: the drain is conditional on neither, and StopTask follows only a drain
        # that won. The room's own job may still be listed for a moment: it is ours to end.
        if workers.drain_after(task_arn, room) is None:
            self._ports.metrics.count("WorkerStopsAvoided")
            log.info("worker took another room meanwhile: kept", extra={"task_arn": task_arn, "room": room})
            self._wake()
            return
        self._ports.runner.stop(task_arn, f"room {room} closed")

    def job_moved(self, room: str, reserved_on: str, running_on: str) -> str | None:
        """LiveKit ran the room's job on another worker than the one holding its slot (it picks
        at random among free workers): the slot follows the job, adopted there first so it is
        never counted nowhere. If that worker is now over capacity, a room holding a slot there
        whose job has not started takes the slot vacated (LiveKit will run its job where one is
        free); that room is returned so its record follows. Else the vacated slot is free and
        waiting rooms are woken for it."""
        now = self._ports.clock.now()
        workers = self._ports.workers
        jobs_per_task = self._policy.jobs_per_task
        workers.adopt_slot(running_on, room, now, jobs_per_task)
        host = workers.get_worker(running_on)
        displaced = None
        if host is not None and len(host.rooms()) > host.capacity:
            unstarted = sorted(name for name in host.reserved if name != room and name not in host.jobs)
            displaced = unstarted[0] if unstarted else None
        if displaced is not None:
            workers.adopt_slot(reserved_on, displaced, now, jobs_per_task)
        workers.release_slot(reserved_on, room, jobs_per_task, unassign=True)
        if displaced is not None:
            workers.release_slot(running_on, displaced, jobs_per_task, unassign=True)
        else:
            self._wake()
        log.info(
            "job ran on another worker: slot moved",
            extra={"room": room, "from": reserved_on, "to": running_on, "swapped_with": displaced},
        )
        return displaced

    def _wake(self) -> None:
        if self._ports.workers.waiting_rooms():
            self._ports.timers.send(WakeRooms(), 0)

    def waiting(self) -> list[str]:
        return [room for room, _ in self._ports.workers.waiting_rooms()[:WAKE_BATCH]]

    def _plan(self, workers: Sequence[WorkerRecord], now: float) -> PoolPlan:
        """The pool's plan on this listing, the demand as stored, without waiting rooms' tasks,
        under ``MAX_TASKS`` as the live-task count has it."""
        return plan_pool(
            workers,
            self._ports.workers.pool_demand(),
            now,
            self._policy,
            self.held(workers),
            live=self.live_count(),
        )

    def _grant(self, tasks: int, now: float) -> LaunchGrant:
        limiter = self._ports.limiter
        return LaunchGrant(tasks) if limiter is None else limiter.acquire(tasks, now)

    def _launch_pool(self, count: int, workers: Sequence[WorkerRecord], now: float) -> None:
        """Pool launches in RunTask calls of up to 10, each behind the limiter. The token hashes
        what the plan was made on, the pool's listing and the live tasks (a slot taken leaves
        the listing as it was before a launch it already made): Lambdas planning on the same
        state launch once."""
        tasks = self._ports.tasks
        live = tasks.live() if tasks is not None else (w.task_arn for w in self._ports.workers.live_workers())
        listing = ",".join([*sorted(w.task_arn for w in workers), "", *sorted(live)])
        batch = 0
        while count > 0:
            digest = hashlib.sha256(f"{listing}\0{int(now // 10)}\0{batch}".encode()).hexdigest()[:40]
            token = f"pool-{digest}"
            keys = self._count([f"{token}#{i}" for i in range(min(count, RUN_TASK_MAX_COUNT))], now)
            if not keys:
                self._ports.metrics.count("PoolExhausted")
                log.warning("pool launch held back: MAX_TASKS tasks live", extra={"tasks": count})
                return
            grant = self._grant(len(keys), now)
            self._uncount(keys[grant.tasks :])
            keys = keys[: grant.tasks]
            if grant.tasks < 1:
                self._ports.metrics.count("LaunchesQueued")
                log.info(
                    "pool launch queued by the launch limiter",
                    extra={"tasks": count, "retry_after": grant.retry_after},
                )
                self._ports.timers.send(WakeRooms(), max(1, math.ceil(grant.retry_after)))
                return
            try:
                launched = self._ports.runner.launch(None, token, grant.tasks)
            except (LaunchFailed, LaunchOutcomeUnknown) as error:
                if isinstance(error, LaunchFailed):
                    self._uncount(keys)  # else the tasks may exist: the sweep's heal settles it
                # The pool tries again after a backoff (a wake); rooms never wait on it.
                log.warning("pool launch failed", extra={"tasks": grant.tasks, "error": str(error)})
                self._ports.metrics.count("TaskLaunchFailures")
                self._ports.timers.send(WakeRooms(), POOL_LAUNCH_RETRY_SECONDS)
                return
            self._confirm(keys, launched, now)
            self._record_starting(launched, now)
            self._ports.metrics.count("PoolTasksLaunched", len(launched))
            log.info("pool tasks launched", extra={"tasks": len(launched)})
            count -= grant.tasks
            batch += 1

    def _record_starting(self, launched: Sequence[LaunchedTask], now: float, room: str | None = None) -> None:
        """Count a launched task as capacity on the way at once, before its first ECS event."""
        for task in launched:
            self._ports.workers.record_task_state(
                ObservedTaskState(
                    task_arn=task.task_arn,
                    version=0,
                    last_status="PROVISIONING",
                    seen_at=now,
                    launched_for=room,
                )
            )
