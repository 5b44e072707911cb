"""This project: the real core on the in-memory twins, triggered the way AWS triggers it.

Webhooks go to ``RoomController.handle_event`` (an exception is a 5xx: LiveKit retries), timer
messages to ``handle_timer`` when due (a failure is received again after the queue's visibility
timeout, then dead-lettered), the schedule to ``Sweeper.sweep`` every minute, ECS task state
changes to ``TaskEventHandler.handle``. The agent container's side is played as the worker
protocol says: once registered, the worker writes its record as ready and sends ``WorkerReady``;
it takes whichever room's job LiveKit hands it and reports it (``JobStarted``) and its end
(``JobEnded``), lists its jobs in its heartbeat, and after ``JOBS_PER_TASK`` rooms exits once its
job ends. The world's LiveKit and ECS ports stand in for the real adapters; the table, queue,
metrics and launch limiter are the twins.

The warm-pool rows are this policy with other settings (:class:`WarmOne` and the others below).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from control_plane.adapters.memory.store import InMemoryStore
from control_plane.events import LiveKitEvent
from control_plane.pool import Demand
from control_plane.ports import LiveKitUnavailable, ObservedTaskState
from control_plane.room import JOIN_RESERVATION_SECONDS, Room
from control_plane.shards import in_shards
from control_plane.slot_index import SLOT_SHARDS
from control_plane.worker_protocol import (
    JobEnded,
    JobOutcome,
    JobStarted,
    TimerMessage,
    WorkerReady,
    WorkerRecord,
    WorkerStatus,
)
from sim.model import SimTask, TaskStateChange, WorkerBehaviour
from sim.policies.base import BasePolicy
from sim.stack import ControlPlane, build_control_plane, default_settings, task_state_change

if TYPE_CHECKING:
    from control_plane.settings import Settings
    from sim.world import World

T = TypeVar("T")

SWEEP_SECONDS = 60.0
# The template's timer queue: VisibilityTimeout 180 s, maxReceiveCount 5 (then the DLQ).
VISIBILITY_TIMEOUT_SECONDS = 180.0
MAX_RECEIVES = 5
# The sweeper Lambda fans LiveKit calls out SWEEP_CONCURRENCY (50) at a time in production.
SWEEP_FAN_OUT = 50
# The agent worker's own grace (agent settings): GRACE_PERIOD_SECONDS + GRACE_MARGIN_SECONDS.
JOB_GRACE_MARGIN_SECONDS = 30.0
HEARTBEAT_SECONDS = 15.0
# A sweep's index query reads about this many attention items per read unit (items ~1 KB).
ITEMS_PER_READ_UNIT = 4
# A pool listing queries each slot-index partition, free and starting, of every shard.
POOL_QUERIES = 2 * SLOT_SHARDS
# The agent container's JOBS_PER_TASK, as the settings' default says: one room in a task's life
# (and one at a time, SLOTS_PER_TASK=1).
JOBS_PER_TASK = 1
# MAX_TASKS is a safety cap an operator sizes to the traffic; the deployed default (100) is below
# the reference day's peak (~160 rooms with humans at once) and the 1,000-room storm, where it
# would be what is measured. The rows run with a cap no trace here reaches.
SIM_MAX_TASKS = 5_000
# The pooled rows recycle a worker after this many rooms per slot (JOBS_PER_TASK = slots x 4): a
# fresh process every few hours of a busy day, so a leak or a stuck model does not live for days.
POOLED_JOBS_PER_SLOT = 4


class AttentionRooms(dict[str, Room]):
    """The twin's rooms, with those in the attention index kept apart as they are written (the
    twin keeps every room for good and never deletes one, so a room's position is fixed)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention: set[str] = set()
        self.position: dict[str, int] = {}

    def __setitem__(self, name: str, room: Room) -> None:
        if name not in self:
            self.position[name] = len(self.position)
        super().__setitem__(name, room)
        if room.in_attention_index:
            self.attention.add(name)
        else:
            self.attention.discard(name)


class IndexedStore(InMemoryStore):
    """The table twin with its live workers and its attention rooms indexed, as the sparse
    attention index holds them.

    The twin keeps every stopped worker's and closed room's record for good (DynamoDB's TTL
    removes them within days) and finds the live ones by scanning all of them: over a simulated
    day of ~10,000 tasks and rooms, read on every slot decision and every sweep, those scans
    were a large part of a run. Same records, same order, same counts; only the listings are
    kept up to date as records are written.
    """

    def __init__(self, retention_seconds: int) -> None:
        super().__init__(retention_seconds)
        self._live: dict[str, None] = {}
        self._indexed_rooms = AttentionRooms()
        self._rooms = self._indexed_rooms

    def rooms_needing_attention(self, shards: Collection[int] | None = None) -> Iterable[Room]:
        rooms = self._indexed_rooms
        with self._lock:
            ordered = sorted(rooms.attention, key=rooms.position.__getitem__)
            return [rooms[name] for name in ordered if in_shards(name, shards)]

    def heartbeat(self, task_arn: str, heartbeat_at: float, jobs: dict[str, str]) -> WorkerRecord | None:
        """The worker's heartbeat write: its time and jobs, nothing the control plane owns (one
        write, as ``put_worker`` of the record read with those two fields changed)."""
        with self._lock:
            current = self._workers.get(task_arn)
            if current is None:
                return None
            self.writes += 1
            fresh = current.model_copy(update={"heartbeat_at": heartbeat_at, "jobs": jobs})
            self._workers[task_arn] = fresh
            return fresh

    def put_worker(self, record: WorkerRecord) -> None:
        super().put_worker(record)
        self._index(record.task_arn)

    def record_task_state(self, state: ObservedTaskState) -> bool:
        recorded = super().record_task_state(state)
        self._index(state.task_arn)
        return recorded

    def live_workers(self, shards: Collection[int] | None = None) -> Iterable[WorkerRecord]:
        with self._lock:
            return [self._workers[arn] for arn in self._live if in_shards(arn, shards)]

    def _index(self, task_arn: str) -> None:
        with self._lock:
            record = self._workers.get(task_arn)
            if record is not None and record.status is not WorkerStatus.STOPPED:
                self._live[task_arn] = None
            else:
                self._live.pop(task_arn, None)


class HeartbeatedWorkers:
    """``WorkerRegistry`` over the table, with the workers' heartbeats applied when read.

    Writing every live worker's heartbeat every 15 s would be most of a simulated day's work,
    and the core sees a heartbeat only when it reads a record. So a record is brought up to its
    worker's latest beat (and its current job) when read: the record the periodic writes would
    have left. Those writes are billed from the workers' lifetimes in the report, not here.
    ``mark_draining`` and a granted ``drain_if_idle`` also tell the worker, which reads the flag
    on its next heartbeat, drains and exits. Everything else is the table's.

    Listing workers is a query of an index (the attention index's live workers, the slot
    index's open or pooled ones; about ``ITEMS_PER_READ_UNIT`` items per read unit), billed per
    call in ``listing_reads``.
    """

    def __init__(self, store: IndexedStore, world: World) -> None:
        self._store = store
        self._world = world
        self.refresh_writes = 0
        self.listing_reads = 0
        self.listings = 0
        self.listed_items = 0
        # The pool's own listings (every free or starting worker): their size grows with the
        # pool, so with the rooms; the capacity model scales them apart (sim.capacity).
        self.pool_listings = 0
        self.pool_items = 0
        # Until when each worker's record is as its last heartbeat left it (its next beat).
        self._fresh_until: dict[str, float] = {}

    def touch(self, task_arn: str) -> None:
        """The worker's jobs changed: its next read brings its record up to date."""
        self._fresh_until.pop(task_arn, None)

    def get_worker(self, task_arn: str) -> WorkerRecord | None:
        record = self._store.get_worker(task_arn)
        return None if record is None else self._beat(record)

    def put_worker(self, record: WorkerRecord) -> None:
        self._store.put_worker(record)

    def mark_draining(self, task_arn: str) -> None:
        self._store.mark_draining(task_arn)
        self._world.drain_requested(task_arn)

    def drain_if_idle(self, task_arn: str) -> bool:
        self.get_worker(task_arn)  # the jobs its last heartbeat listed
        drained = self._store.drain_if_idle(task_arn)
        if drained:
            self._world.drain_requested(task_arn)
        return drained

    def reap_slot(self, task_arn: str, room: str, reserved_at: float, jobs_per_task: int) -> bool:
        return self._store.reap_slot(task_arn, room, reserved_at, jobs_per_task)

    def drain_after(self, task_arn: str, room: str) -> WorkerRecord | None:
        self.get_worker(task_arn)  # the jobs its last heartbeat listed
        drained = self._store.drain_after(task_arn, room)
        if drained is not None:
            self._world.drain_requested(task_arn)
        return drained

    def reserve_slot(self, worker: WorkerRecord, room: str, now: float, jobs_per_task: int) -> bool:
        return self._store.reserve_slot(worker, room, now, jobs_per_task)

    def adopt_slot(self, task_arn: str, room: str, now: float, jobs_per_task: int) -> None:
        self._store.adopt_slot(task_arn, room, now, jobs_per_task)

    def release_slot(
        self, task_arn: str, room: str, jobs_per_task: int, unassign: bool = False
    ) -> WorkerRecord | None:
        return self._store.release_slot(task_arn, room, jobs_per_task, unassign)

    def put_waiting(self, room: str, since: float) -> None:
        self._store.put_waiting(room, since)

    def remove_waiting(self, room: str) -> None:
        self._store.remove_waiting(room)

    def is_waiting(self, room: str) -> bool:
        return self._store.is_waiting(room)

    def waiting_rooms(self) -> list[tuple[str, float]]:
        return self._store.waiting_rooms()

    def pool_demand(self) -> Demand:
        return self._store.pool_demand()

    def count_arrival(self, now: float) -> None:
        self._store.count_arrival(now)

    def mark_ready(self, task_arn: str, now: float, jobs_per_task: int) -> WorkerRecord | None:
        return self._store.mark_ready(task_arn, now, jobs_per_task)

    def record_cold_start(self, seconds: float) -> None:
        self._store.record_cold_start(seconds)

    def live_workers(self, shards: Collection[int] | None = None) -> Iterable[WorkerRecord]:
        return self._listed([self._store.live_workers(shards)])

    def open_workers(self, shard: int, limit: int) -> list[WorkerRecord]:
        return self._listed([self._store.open_workers(shard, limit)])

    def pool_workers(self) -> list[WorkerRecord]:
        listed = self._listed([self._store.pool_workers()], queries=POOL_QUERIES)
        self.pool_listings += 1
        self.pool_items += len(listed)
        return listed

    def refile_slot(self, worker: WorkerRecord, jobs_per_task: int) -> bool:
        return self._store.refile_slot(worker, jobs_per_task)

    def _listed(self, found: list[Iterable[WorkerRecord]], queries: int = 1) -> list[WorkerRecord]:
        """Index query results with heartbeats applied, billed per query and item read."""
        listed = [self._beat(record) for records in found for record in records]
        self.listing_reads += max(queries, math.ceil(len(listed) / ITEMS_PER_READ_UNIT))
        self.listings += 1
        self.listed_items += len(listed)
        return listed

    def record_task_state(self, state: ObservedTaskState) -> bool:
        return self._store.record_task_state(state)

    def _beat(self, record: WorkerRecord) -> WorkerRecord:
        if record.status is not WorkerStatus.READY:
            return record
        arn = record.task_arn
        if self._world.now() < self._fresh_until.get(arn, -math.inf):
            return record
        task = self._world.tasks.get(arn)
        beat = self._world.heartbeat_at(task) if task is not None else None
        if task is None or beat is None:
            return record
        self._fresh_until[arn] = beat + (self._world.policy.worker.heartbeat_s or HEARTBEAT_SECONDS)
        jobs = task.rooms()
        if beat <= record.heartbeat_at and jobs == record.jobs:
            return record
        fresh = self._store.heartbeat(arn, max(beat, record.heartbeat_at), jobs)
        if fresh is None:
            return record
        self.refresh_writes += 1
        return fresh


class DefaultPolicy(BasePolicy):
    """The deployed defaults: ``WARM_TASKS=0``, every room that finds no free slot launches."""

    name: ClassVar[str] = "default"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour(
        job_grace_s=60.0 + JOB_GRACE_MARGIN_SECONDS,
        exit_after_job=False,
        heartbeat_s=HEARTBEAT_SECONDS,
        any_room=True,
        jobs_per_task=JOBS_PER_TASK,
    )
    # Settings this row changes from the deployed defaults.
    overrides: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, settings: Settings | None = None, *, join_api: bool = False) -> None:
        # The join-API path: the app asks ``POST /rooms/{room}/join`` as each session opens, so
        # the room is created and the agent asked for before the first human connects.
        self.join_api = join_api
        # One sweep worker thread: the same calls as 50, in one fixed order (reproducible runs).
        self.settings = settings or default_settings(
            sweep_concurrency=1, max_tasks=SIM_MAX_TASKS, **self.overrides
        )
        pool = self.settings.pool_policy
        if (pool.slots_per_task, pool.jobs_per_task) != (self.worker.slots, self.worker.jobs_per_task):
            raise ValueError("the simulated worker must serve the settings' SLOTS_PER_TASK and JOBS_PER_TASK")

    def start(self, world: World) -> None:
        super().start(world)
        store = IndexedStore(self.settings.history_ttl_seconds)
        self.workers = HeartbeatedWorkers(store, world)
        self.plane: ControlPlane = build_control_plane(
            world.clock, world.livekit, world.ecs, self.settings, store=store, workers=self.workers
        )
        self._reads = self._writes = 0
        world.every(SWEEP_SECONDS, self.sweep, first=SWEEP_SECONDS / 2)

    # --- triggers ----------------------------------------------------------------------------

    def on_webhook(self, event: LiveKitEvent) -> None:
        self._invoke("webhook", self.plane.controller.handle_event, event)

    def on_room_opened(self, room: str) -> None:
        if self.join_api:
            self._invoke("api", self._join, room)

    def _join(self, room: str) -> None:
        """What ``api.logic.join`` asks of the core: the LiveKit room (``CreateRoom``), then the
        human's place and a reconcile; a LiveKit outage fails the request (the webhook path
        still brings the agent when the human connects)."""
        session = self.world.open_session(room)
        if session is None:
            return
        identity = min(session.presences, key=lambda p: p.join).identity
        controller = self.plane.controller
        try:
            live = controller.create_room(room)
            controller.expect_human(live, identity, self.world.now() + JOIN_RESERVATION_SECONDS)
        except LiveKitUnavailable as error:
            self.world.ledger.error("api", error)

    def on_task_state(self, change: TaskStateChange) -> None:
        body = task_state_change(
            change.task_arn,
            change.last_status,
            change.version,
            room=change.room,
            launch_token=change.launch_token,
            stop_code=change.stop_code,
            exit_code=change.exit_code,
        )
        self._invoke("task_events", self.plane.task_events.handle, body)

    def on_worker_ready(self, task: SimTask) -> None:
        """What the agent container does once registered: its record as ready, then the message."""
        self.plane.store.put_worker(
            WorkerRecord(
                task_arn=task.arn,
                status=WorkerStatus.READY,
                capacity=self.worker.slots,
                heartbeat_at=self.world.now(),
                launched_for=task.room,
            )
        )
        self.plane.timers.send(WorkerReady(task_arn=task.arn, room=task.room), 0)
        self._sync()

    def on_job_started(self, task: SimTask, room: str, job_id: str) -> None:
        """The worker reports the job LiveKit handed it (whichever room's) on the timer queue."""
        self.workers.touch(task.arn)
        live = self.world.livekit_twin.get_room(room)
        if live is not None:  # a job's room is open: LiveKit gives the worker its sid
            self.plane.timers.send(
                JobStarted(task_arn=task.arn, room=room, room_sid=live.sid, job_id=job_id), 0
            )
        self._sync()

    def on_job_ended(self, task: SimTask, room: str, job_id: str, duration: float) -> None:
        """Jobs here end by grace, deletion or the room closing: all successes."""
        self.workers.touch(task.arn)
        self.plane.timers.send(
            JobEnded(
                task_arn=task.arn,
                room=room,
                job_id=job_id,
                outcome=JobOutcome.SUCCESS,
                duration_seconds=max(0.0, duration),
            ),
            0,
        )
        self._sync()

    def slot_free(self, room: str) -> bool:
        """A slot the room may take, as the core judges it (``Capacity.slot_open``); the reads
        it makes are the measurement's, not the control plane's, so they are not billed."""
        store, workers = self.plane.store, self.workers
        counts = store.reads, workers.listing_reads, workers.listings, workers.listed_items
        try:
            return self.plane.controller.capacity.slot_open(room)
        finally:
            store.reads, workers.listing_reads, workers.listings, workers.listed_items = counts

    def sweep(self) -> None:
        """The scheduled sweep (in virtual time it takes no time, so never runs short of its 55 s),
        billed with its index query: about one read unit per four ~1 KB attention items. An
        invocation that raises is a failed Lambda run (logged, counted): the next one comes a
        minute later, as EventBridge's schedule does not retry it."""
        try:
            report = self._invoke("sweeper", self.plane.sweeper.sweep, lambda: 600.0, parallel=SWEEP_FAN_OUT)
        except Exception as error:
            self.world.ledger.sweeps_failed += 1
            self.world.ledger.error("sweeper", error)
            return
        # The worker items of the index are billed as ``HeartbeatedWorkers`` lists them.
        indexed = sum(v for k, v in report.counts.items() if k.startswith("Rooms["))
        self.world.ledger.stored(math.ceil(indexed / ITEMS_PER_READ_UNIT), 0)

    def _deliver_timer(self, message: TimerMessage, receive: int) -> None:
        self.world.ledger.queued(2)  # receive and delete (the event source mapping's calls)
        try:
            self._invoke("timer", self.plane.controller.handle_timer, message)
        except Exception as error:
            self.world.ledger.timer_receives_failed += 1
            self.world.ledger.error("timer", error)
            if receive < MAX_RECEIVES:
                self.world.after(VISIBILITY_TIMEOUT_SECONDS, self._deliver_timer, message, receive + 1)
            else:
                self.world.ledger.timer_messages_dead += 1

    # --- accounting --------------------------------------------------------------------------

    def _invoke(self, function: str, call: Callable[..., T], *args: Any, parallel: int = 1) -> T:
        """One Lambda invocation of the core: its calls counted, its duration billed, the timer
        messages it sent handed to the world's queue."""
        ledger = self.world.ledger
        self._sync()
        livekit0, aws0 = ledger.livekit_calls, ledger.aws_calls
        try:
            return call(*args)
        finally:
            self._sync()
            self.world.bill(function, ledger.livekit_calls - livekit0, ledger.aws_calls - aws0, parallel)

    def _sync(self) -> None:
        """Move the twins' counts into the ledger and the queue's new messages into the world."""
        store = self.plane.store
        limiter, tasks = self.plane.limiter, self.plane.tasks
        workers = self.workers
        ledger = self.world.ledger
        reads = store.reads + limiter.reads + tasks.reads
        writes = store.writes - workers.refresh_writes + limiter.writes + tasks.writes
        ledger.stored(reads - self._reads, writes - self._writes)
        # A listing of the live workers is one Query call, billed by the items it returns.
        listed = workers.listing_reads - ledger.worker_listing_reads
        ledger.stored(listed, 0, calls=workers.listings - ledger.worker_listings)
        self._reads, self._writes = reads, writes
        ledger.worker_listings = workers.listings
        ledger.worker_items_listed = workers.listed_items
        ledger.worker_listing_reads = workers.listing_reads
        ledger.pool_listings = workers.pool_listings
        ledger.pool_items_listed = workers.pool_items
        timers = self.plane.timers
        sent = timers.sent
        if sent:
            timers.sent = []  # the world is the queue's consumer from here on
            self.world.ledger.queued(len(sent))
            for scheduled in sent:
                self.world.at(scheduled.due_at, self._deliver_timer, scheduled.message, 1)


class WarmOne(DefaultPolicy):
    """One warm worker (``WARM_TASKS=1``): a free slot is kept ready and replaced when taken."""

    name: ClassVar[str] = "warm_1"
    overrides: ClassVar[Mapping[str, Any]] = {"warm_tasks": 1}


class WarmTwo(DefaultPolicy):
    name: ClassVar[str] = "warm_2"
    overrides: ClassVar[Mapping[str, Any]] = {"warm_tasks": 2}


class Adaptive(DefaultPolicy):
    """``WARM_ADAPTIVE``: warm slots sized from the arrival rate and the measured cold start so
    that at most 1 % of first joins find none (``WARM_TARGET_WAIT_SHARE=0.01``). The goal it is
    held to, wait p99 <= 2 s, needs at most 1 % of first joins to wait for a cold start; the
    setting's default, 5 %, cannot meet it by construction (one first join in twenty waits)."""

    name: ClassVar[str] = "adaptive"
    overrides: ClassVar[Mapping[str, Any]] = {"warm_adaptive": True, "warm_target_wait_share": 0.01}


def pooled(slots: int) -> tuple[WorkerBehaviour, Mapping[str, Any]]:
    """A pooled row's worker and settings: ``slots`` rooms at once, recycled after
    ``POOLED_JOBS_PER_SLOT`` rooms per slot, on the adaptive pool."""
    jobs = slots * POOLED_JOBS_PER_SLOT
    worker = replace(DefaultPolicy.worker, slots=slots, jobs_per_task=jobs)
    return worker, {**Adaptive.overrides, "slots_per_task": slots, "jobs_per_task": jobs}


class PooledFour(Adaptive):
    """Long-lived workers serving several rooms at once, as livekit-agents workers normally run:
    the adaptive pool counted in slots (``SLOTS_PER_TASK=4``), each worker recycled after
    ``JOBS_PER_TASK`` rooms (it takes no more, drains, and exits once its last job has ended:
    a room's end never stops a task another room still uses)."""

    name: ClassVar[str] = "pooled_4"
    worker, overrides = pooled(4)


class PooledEight(Adaptive):
    """``pooled_4`` with eight rooms per worker (``SLOTS_PER_TASK=8``)."""

    name: ClassVar[str] = "pooled_8"
    worker, overrides = pooled(8)
