"""A whole control plane on in-memory twins and a virtual clock, driven the way AWS would.

``TwinStack`` delivers webhook events to the controller, plays the worker side (record +
ready message), runs timer messages when the virtual clock reaches them, runs the sweeper, and
delivers ECS task state changes (a crash is the task dying plus its STOPPED event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from control_plane.adapters.memory.async_livekit import AsyncLiveKitFacade
from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.adapters.memory.runtime import (
    InMemoryMetrics,
    InMemoryRunner,
    InMemoryTimers,
    VirtualClock,
)
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.adapters.memory.task_count import InMemoryTaskCount
from control_plane.controller import RoomController
from control_plane.events import LiveKitEvent
from control_plane.pool import PoolPolicy
from control_plane.ports import LaunchLimiter, Ports
from control_plane.reconcile import Policy
from control_plane.room import JOIN_RESERVATION_SECONDS, Room
from control_plane.settings import TASK_STARTED_BY
from control_plane.sweeper import Sweeper, SweepPolicy, SweepReport
from control_plane.task_events import EcsTaskStateChange, TaskEventHandler, TaskEventOutcome
from control_plane.worker_protocol import JobStarted, WorkerReady, WorkerRecord, WorkerStatus
from local.fixtures import (  # noqa: F401  (the tests import them from here too)
    AGENT,
    AGENT_NAME,
    CLUSTER,
    EGRESS,
    EVENT_DEPARTURE_TIMEOUT,
    POLICY,
    SIP,
    STANDARD,
    SWEEP_POLICY,
    ecs_task_state_change,
    event,
)

# What the settings give rooms we create: the join reservation + grace + a 10 s margin.
ROOM_DEPARTURE_TIMEOUT = JOIN_RESERVATION_SECONDS + POLICY.grace_seconds + 10

POOL_POLICY = PoolPolicy(worker_stale_seconds=45, start_timeout_seconds=300)


@dataclass
class TwinStack:
    clock: VirtualClock = field(default_factory=VirtualClock)
    policy: Policy = POLICY
    sweep_policy: SweepPolicy = SWEEP_POLICY
    pool: PoolPolicy = POOL_POLICY
    limiter: LaunchLimiter | None = None
    tasks: InMemoryTaskCount = field(default_factory=InMemoryTaskCount)

    def __post_init__(self) -> None:
        self.store = InMemoryStore()
        self.runner = InMemoryRunner(self.clock)
        self.livekit = InMemoryLiveKit(self.clock)
        self.timers = InMemoryTimers(self.clock)
        self.metrics = InMemoryMetrics()
        self.ports = Ports(
            rooms=self.store,
            workers=self.store,
            runner=self.runner,
            livekit=self.livekit,
            timers=self.timers,
            clock=self.clock,
            metrics=self.metrics,
            limiter=self.limiter,
            tasks=self.tasks,
        )
        self.controller = self.controller_for(self.ports)
        self.sweeper = Sweeper(
            self.ports, AsyncLiveKitFacade(self.livekit), self.controller_for, self.sweep_policy
        )
        self.task_events = TaskEventHandler(self.ports, self.controller, TASK_STARTED_BY, CLUSTER)
        self._ecs_versions: dict[str, int] = {}
        self.heartbeating: set[str] = set()

    def controller_for(self, ports: Ports) -> RoomController:
        return RoomController(
            ports,
            self.policy,
            departure_timeout=ROOM_DEPARTURE_TIMEOUT,
            event_ttl_seconds=86400,
            pool=self.pool,
        )

    def event_for(self, kind: str, sid: str, **kwargs: object) -> LiveKitEvent:
        """A webhook for a human ``sid``, timestamped now, without delivering it."""
        kwargs.setdefault("at", self.clock.now())
        return event(kind, sid=sid, identity=f"human-{sid}", **kwargs)  # type: ignore[arg-type]

    def deliver(self, kind: str, **kwargs: object) -> str:
        """A webhook, for the session LiveKit (the twin) has open under that name by default."""
        kwargs.setdefault("at", self.clock.now())
        live = self.livekit.get_room(str(kwargs.get("room", "room-1")))
        if live is not None and kwargs.setdefault("room_sid", live.sid) == live.sid:
            kwargs.setdefault("room_created_at", live.created_at)
        return self.controller.handle_event(event(kind, **kwargs))  # type: ignore[arg-type]

    def join(self, sid: str, identity: str = "alice", room: str = "room-1", **kwargs: object) -> str:
        if self.livekit.get_room(room) is None:  # LiveKit's room has the timeout its webhooks report
            departure_timeout = kwargs.get("departure_timeout", EVENT_DEPARTURE_TIMEOUT)
            assert isinstance(departure_timeout, int)
            self.livekit.open_room(room, departure_timeout=departure_timeout)
        self.livekit.add_participant(room, sid, identity)
        return self.deliver("participant_joined", sid=sid, identity=identity, room=room, **kwargs)

    def leave(self, sid: str, identity: str = "alice", room: str = "room-1", **kwargs: object) -> str:
        self.livekit.remove_participant(room, sid)
        return self.deliver("participant_left", sid=sid, identity=identity, room=room, **kwargs)

    def room(self, name: str = "room-1") -> Room:
        room = self.store.get(name)
        assert room is not None
        return room

    def worker_becomes_ready(self, room: str = "room-1") -> str:
        """What the agent container does once registered: record, then the ready message."""
        task = next(t for t in self.runner.running() if t.room == room)
        self.livekit.register_worker(AGENT_NAME)
        self.store.put_worker(
            WorkerRecord(
                task_arn=task.arn,
                status=WorkerStatus.READY,
                capacity=1,
                heartbeat_at=self.clock.now(),
                launched_for=room,
            )
        )
        self.timers.send(WorkerReady(task_arn=task.arn, room=room), 0)
        self.heartbeating.add(task.arn)
        self.run_due_timers()
        return task.arn

    def worker_registered(self, task_arn: str) -> bool:
        """The task's worker has reported in (a ``starting`` record only says ECS launched it)."""
        record = self.store.get_worker(task_arn)
        return record is not None and record.status is not WorkerStatus.STARTING

    def pool_worker_becomes_ready(self, task_arn: str, capacity: int = 1) -> None:
        """A task launched for the pool (no room) registers and says so."""
        self.livekit.register_worker(AGENT_NAME)
        self.store.put_worker(
            WorkerRecord(
                task_arn=task_arn, status=WorkerStatus.READY, capacity=capacity, heartbeat_at=self.clock.now()
            )
        )
        self.timers.send(WorkerReady(task_arn=task_arn), 0)
        self.heartbeating.add(task_arn)
        self.run_due_timers()

    def pool_tasks(self) -> list[str]:
        """Running tasks launched for the pool, oldest first."""
        return [t.arn for t in self.runner.running() if t.room is None]

    def job_started(self, room: str, task_arn: str, job_id: str = "AJ_1") -> None:
        """LiveKit hands the room's job to the task's worker, which reports it (and lists it
        on heartbeat)."""
        record = self.store.get_worker(task_arn)
        assert record is not None
        self.livekit.hand_job(room, task_arn, job_id)
        self.heartbeat(task_arn, {**record.jobs, room: job_id})
        self.timers.send(
            JobStarted(task_arn=task_arn, room=room, room_sid=self.room(room).sid, job_id=job_id), 0
        )
        self.run_due_timers()

    def run_due_timers(self) -> int:
        due = self.timers.take_due()
        for message in due:
            self.controller.handle_timer(message)
        return len(due)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing timer messages as they come due."""
        target = self.clock.now() + seconds
        while True:
            upcoming = [s.due_at for s in self.timers.sent if s.due_at <= target]
            if not upcoming:
                break
            self.clock.advance(max(0.0, min(upcoming) - self.clock.now()))
            self.run_due_timers()
        self.clock.advance(target - self.clock.now())

    def dispatches(self, room: str = "room-1") -> list[object]:
        return [d for d in self.livekit.list_dispatches(room) if d.agent_name == AGENT_NAME]

    # --- sweeper and ECS events -------------------------------------------------------------

    def sweep(self, remaining_seconds: Callable[[], float] = lambda: 600.0) -> SweepReport:
        """One scheduled sweep; ``remaining_seconds`` is the Lambda's time left, as a callable.

        Workers that became ready keep heartbeating (as their periodic writes would have)
        while their task runs, unless :meth:`silence` hung them.
        """
        for arn in sorted(self.heartbeating):
            record = self.store.get_worker(arn)
            if (
                self.runner.tasks[arn].running
                and record is not None
                and record.status is not WorkerStatus.STOPPED
            ):
                self.heartbeat(arn)
        return self.sweeper.sweep(remaining_seconds)

    def silence(self, task_arn: str) -> None:
        """The worker hangs: no more heartbeats."""
        self.heartbeating.discard(task_arn)

    def task_of(self, room: str = "room-1") -> str:
        agent = self.room(room).agent
        assert agent is not None and agent.task_arn is not None
        return agent.task_arn

    def heartbeat(self, task_arn: str, jobs: dict[str, str] | None = None) -> None:
        """The worker's periodic record write (it never writes ``draining``)."""
        record = self.store.get_worker(task_arn)
        assert record is not None
        self.store.put_worker(
            record.model_copy(
                update={"heartbeat_at": self.clock.now(), "jobs": jobs if jobs is not None else record.jobs}
            )
        )

    def ecs_event(
        self, task_arn: str, last_status: str, version: int | None = None, **kwargs: object
    ) -> TaskEventOutcome:
        """Deliver an ECS task state change for one of our tasks (next version unless given)."""
        task = self.runner.tasks[task_arn]
        if version is None:
            version = self._ecs_versions.get(task_arn, 0) + 1
        self._ecs_versions[task_arn] = max(version, self._ecs_versions.get(task_arn, 0))
        kwargs.setdefault("room", task.room)
        kwargs.setdefault("launch_token", task.launch_token)
        body = ecs_task_state_change(task_arn, last_status, version, **kwargs)  # type: ignore[arg-type]
        return self.task_events.handle(EcsTaskStateChange.model_validate(body))

    def crash(
        self, room: str = "room-1", stop_code: str = "EssentialContainerExited", exit_code: int | None = 1
    ) -> str:
        """The room's task dies on its own and ECS reports it."""
        arn = self.task_of(room)
        self.runner.crash(arn, stop_code, exit_code)
        self.ecs_event(arn, "STOPPED", stop_code=stop_code, exit_code=exit_code)
        return arn

    def crash_loop(self) -> None:
        """The room's worker comes up and its task dies ``crash_loop_limit`` times, a minute apart:
        the crash loop that marks the room failed."""
        for _ in range(self.policy.crash_loop_limit):
            self.worker_becomes_ready()
            self.crash()
            self.advance(60)
