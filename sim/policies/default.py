"""This project: the real core on the in-memory twins, triggered the way AWS triggers it.

Webhooks go to ``RoomController.handle_event`` (an exception is a 5xx: LiveKit retries), timer
messages to ``handle_timer`` when due (a failure is received again after the queue's visibility
timeout, then dead-lettered), the schedule to ``Sweeper.sweep`` every minute, ECS task state
changes to ``TaskEventHandler.handle``. The agent container's side is played as the worker
protocol says: once registered, the worker writes its record as ready and sends ``WorkerReady``.
The world's LiveKit and ECS ports stand in for the real adapters; the table, queue and metrics
are the twins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from control_plane.adapters.memory.store import InMemoryStore
from control_plane.events import LiveKitEvent
from control_plane.ports import ObservedTaskState
from control_plane.worker_protocol import TimerMessage, WorkerReady, WorkerRecord, WorkerStatus
from sim.policies.base import BasePolicy
from sim.stack import ControlPlane, build_control_plane, default_settings, task_state_change
from sim.world import SimTask, TaskStateChange, WorkerBehaviour

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
WORKER_CAPACITY = 1


class HeartbeatedWorkers:
    """``WorkerRegistry`` over the table, with the workers' heartbeats applied when read.

    Writing every live worker's heartbeat every 15 s would be most of a simulated day's work,
    and the core sees a heartbeat only when it reads a record. So a record is brought up to its
    worker's latest beat (and its current job) when read: the record the periodic writes would
    have left. Those writes are billed from the workers' lifetimes in the report, not here.
    ``mark_draining`` also tells the worker, which drains and exits.
    """

    def __init__(self, store: InMemoryStore, world: World) -> None:
        self._store = store
        self._world = world
        self.refresh_writes = 0

    def get_worker(self, task_arn: str) -> WorkerRecord | None:
        record = self._store.get_worker(task_arn)
        return None if record is None else self._beat(record)

    def put_worker(self, record: WorkerRecord) -> None:
        self._store.put_worker(record)

    def mark_draining(self, task_arn: str) -> None:
        self._store.mark_draining(task_arn)
        self._world.drain_requested(task_arn)

    def live_workers(self) -> Iterable[WorkerRecord]:
        return [self._beat(record) for record in self._store.live_workers()]

    def record_task_state(self, state: ObservedTaskState) -> bool:
        return self._store.record_task_state(state)

    def _beat(self, record: WorkerRecord) -> WorkerRecord:
        if record.status is not WorkerStatus.READY:
            return record
        task = self._world.tasks.get(record.task_arn)
        beat = self._world.heartbeat_at(task) if task is not None else None
        if task is None or beat is None:
            return record
        jobs = {task.job[0]: task.job[1]} if task.job is not None else {}
        if beat <= record.heartbeat_at and jobs == record.jobs:
            return record
        fresh = record.model_copy(update={"heartbeat_at": max(beat, record.heartbeat_at), "jobs": jobs})
        self._store.put_worker(fresh)
        self.refresh_writes += 1
        return fresh


class DefaultPolicy(BasePolicy):
    name: ClassVar[str] = "default"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour(
        job_grace_s=60.0 + JOB_GRACE_MARGIN_SECONDS, exit_after_job=False, heartbeat_s=HEARTBEAT_SECONDS
    )

    def __init__(self, settings: Settings | None = None) -> None:
        # One sweep worker thread: the same calls as 50, in one fixed order (reproducible runs).
        self.settings = settings or default_settings(sweep_concurrency=1)

    def start(self, world: World) -> None:
        super().start(world)
        store = InMemoryStore(self.settings.history_ttl_seconds)
        self.workers = HeartbeatedWorkers(store, world)
        self.plane: ControlPlane = build_control_plane(
            world.clock, world.livekit, world.ecs, self.settings, store=store, workers=self.workers
        )
        self._reads = self._writes = 0
        world.every(SWEEP_SECONDS, self.sweep, first=SWEEP_SECONDS / 2)

    # --- triggers ----------------------------------------------------------------------------

    def on_webhook(self, event: LiveKitEvent) -> None:
        self._invoke("webhook", self.plane.controller.handle_event, event)

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
                capacity=WORKER_CAPACITY,
                heartbeat_at=self.world.now(),
                launched_for=task.room,
            )
        )
        self.plane.timers.send(WorkerReady(task_arn=task.arn, room=task.room), 0)
        self._sync()

    def sweep(self) -> None:
        """The scheduled sweep (in virtual time it takes no time, so never runs short of its 55 s),
        billed with its index query: about one read unit per four ~1 KB attention items."""
        report = self._invoke("sweeper", self.plane.sweeper.sweep, lambda: 600.0, parallel=SWEEP_FAN_OUT)
        indexed = sum(v for k, v in report.counts.items() if k.startswith("Rooms[")) + report.counts.get(
            "RunningTasks", 0
        )
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
        refreshes = self.workers.refresh_writes
        reads, writes = store.reads, store.writes - refreshes
        self.world.ledger.stored(reads - self._reads, writes - self._writes)
        self._reads, self._writes = reads, writes
        timers = self.plane.timers
        sent = timers.sent
        if sent:
            timers.sent = []  # the world is the queue's consumer from here on
            self.world.ledger.queued(len(sent))
            for scheduled in sent:
                self.world.at(scheduled.due_at, self._deliver_timer, scheduled.message, 1)
