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
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from control_plane.events import LiveKitEvent
from control_plane.ports import LiveKitUnavailable
from control_plane.room import JOIN_RESERVATION_SECONDS
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
from sim.policies.registry import HEARTBEAT_SECONDS, ITEMS_PER_READ_UNIT, HeartbeatedWorkers, IndexedStore
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
        limiter = self.plane.limiter
        workers = self.workers
        ledger = self.world.ledger
        reads = store.reads + limiter.reads
        writes = store.writes - workers.refresh_writes + limiter.writes
        ledger.stored(reads - self._reads, writes - self._writes)
        # A listing of the live workers is one Query call, billed by the items it returns.
        listed = workers.listing_reads - ledger.worker_listing_reads
        ledger.stored(listed, 0, calls=workers.listings - ledger.worker_listings)
        self._reads, self._writes = reads, writes
        ledger.worker_listings = workers.listings
        ledger.worker_items_listed = workers.listed_items
        ledger.worker_listing_reads = workers.listing_reads
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
