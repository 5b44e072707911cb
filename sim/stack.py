"""The control plane assembled on in-memory twins, wired the way ``composition`` wires it for Lambda.

One assembly for everything that runs the real core without AWS: the simulator's ``default``
policy uses it, and ``tests/harness.py``'s ``TwinStack`` can build on it (nothing outside
``tests/`` imports from ``tests/``). Settings are the deployed defaults, read without the
environment, so a run never depends on the shell it was started from.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from control_plane.adapters.memory.async_livekit import AsyncLiveKitFacade
from control_plane.adapters.memory.launch_limiter import InMemoryLaunchLimiter
from control_plane.adapters.memory.runtime import InMemoryMetrics, InMemoryTimers, VirtualClock
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.adapters.memory.task_count import InMemoryTaskCount
from control_plane.controller import RoomController
from control_plane.ports import AgentRunner, LaunchGrant, LiveKitGateway, Ports, WorkerRegistry
from control_plane.settings import TASK_STARTED_BY, Settings
from control_plane.sweeper import Sweeper
from control_plane.task_events import (
    ContainerOverride,
    ContainerState,
    EcsTaskDetail,
    EcsTaskStateChange,
    EnvironmentVariable,
    TaskEventHandler,
    TaskOverrides,
)
from control_plane.worker_protocol import LAUNCH_TOKEN_ENV, LAUNCHED_FOR_ROOM_ENV

CLUSTER = "livekit-agents"
REGION = "us-east-1"
ACCOUNT = "123456789012"
CONTAINER = "agent"


def default_settings(**overrides: Any) -> Settings:
    """The deployed defaults (``Settings`` field defaults), not read from the environment."""
    return Settings.model_construct(**overrides)


class CountedLaunchLimiter:
    """The launch limiter twin, counting the DynamoDB requests the real adapter makes: a
    strongly consistent read per ask, and a conditional write per grant of at least one task."""

    def __init__(self, limiter: InMemoryLaunchLimiter) -> None:
        self._limiter = limiter
        self.reads = 0
        self.writes = 0
        self.denied = 0

    def acquire(self, tasks: int, now: float) -> LaunchGrant:
        grant = self._limiter.acquire(tasks, now)
        self.reads += 1
        if grant.tasks > 0:
            self.writes += 1
        else:
            self.denied += 1
        return grant


_Result = TypeVar("_Result")


class CountedTaskCount:
    """The live-task count twin (``LIMITER#tasks``, one item), counting the DynamoDB requests the
    real adapter makes: a strongly consistent read per call, a conditional write when the count
    changes. Production counts live tasks this way; without it the core lists every worker."""

    def __init__(self) -> None:
        self._count = InMemoryTaskCount()
        self.reads = 0
        self.writes = 0

    def reserve(self, keys: Sequence[str], max_tasks: int, now: float) -> list[str]:
        return self._counted(lambda: self._count.reserve(keys, max_tasks, now))

    def confirm(self, keys: Sequence[str], task_arns: Sequence[str], now: float) -> None:
        self._counted(lambda: self._count.confirm(keys, task_arns, now))

    def release(self, keys: Collection[str]) -> None:
        self._counted(lambda: self._count.release(keys))

    def heal(self, listed: Collection[str], now: float) -> None:
        self._counted(lambda: self._count.heal(listed, now))

    def live(self) -> dict[str, float]:
        self.reads += 1
        return self._count.live()

    def _counted(self, change: Callable[[], _Result]) -> _Result:
        before = self._count.stored_item()
        result = change()
        self.reads += 1
        if self._count.stored_item() != before:
            self.writes += 1
        return result


@dataclass
class ControlPlane:
    """What each Lambda handler calls, on twins: webhook and timer → ``controller``, the
    schedule → ``sweeper``, ECS task state changes → ``task_events``."""

    ports: Ports
    store: InMemoryStore
    timers: InMemoryTimers
    metrics: InMemoryMetrics
    limiter: CountedLaunchLimiter
    tasks: CountedTaskCount
    controller: RoomController
    sweeper: Sweeper
    task_events: TaskEventHandler


def build_control_plane(
    clock: VirtualClock,
    livekit: LiveKitGateway,
    runner: AgentRunner,
    settings: Settings,
    *,
    store: InMemoryStore | None = None,
    workers: WorkerRegistry | None = None,
) -> ControlPlane:
    """The core over the given LiveKit and ECS ports, with a twin table, queue, metrics and
    launch limiter (every launch passes it, as in Lambda); ``workers`` replaces the table's
    worker registry (the simulator's heartbeating one)."""
    table = store if store is not None else InMemoryStore(settings.history_ttl_seconds)
    timers = InMemoryTimers(clock)
    metrics = InMemoryMetrics()
    limiter = CountedLaunchLimiter(InMemoryLaunchLimiter(settings.launch_limits))
    tasks = CountedTaskCount()
    ports = Ports(
        rooms=table,
        workers=workers if workers is not None else table,
        runner=runner,
        livekit=livekit,
        timers=timers,
        clock=clock,
        metrics=metrics,
        limiter=limiter,
        tasks=tasks,
    )

    def controller_for(room_ports: Ports) -> RoomController:
        return RoomController(
            room_ports,
            settings.policy,
            departure_timeout=settings.departure_timeout,
            event_ttl_seconds=settings.event_dedupe_ttl_seconds,
            pool=settings.pool_policy,
        )

    controller = controller_for(ports)
    sweeper = Sweeper(
        ports, AsyncLiveKitFacade(livekit), controller_for, settings.sweep_policy, sync_livekit=livekit
    )
    task_events = TaskEventHandler(ports, controller, TASK_STARTED_BY, CLUSTER)
    return ControlPlane(ports, table, timers, metrics, limiter, tasks, controller, sweeper, task_events)


def task_state_change(
    task_arn: str,
    last_status: str,
    version: int,
    *,
    room: str | None,
    launch_token: str | None,
    stop_code: str | None = None,
    exit_code: int | None = None,
    started_by: str = TASK_STARTED_BY,
    cluster: str = CLUSTER,
) -> EcsTaskStateChange:
    """An "ECS Task State Change" for one of our RunTask tasks, as the EventBridge rule delivers
    it (the fields the handler reads: status, version, stop code, exit codes, env overrides)."""
    environment = [
        EnvironmentVariable(name=name, value=value)
        for name, value in ((LAUNCHED_FOR_ROOM_ENV, room), (LAUNCH_TOKEN_ENV, launch_token))
        if value
    ]
    stopped = last_status == "STOPPED"
    return EcsTaskStateChange(
        id=f"{task_arn}:{version}",
        detail_type="ECS Task State Change",
        source="aws.ecs",
        detail=EcsTaskDetail(
            task_arn=task_arn,
            cluster_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
            last_status=last_status,
            desired_status="STOPPED" if stopped else "RUNNING",
            version=version,
            started_by=started_by,
            stop_code=stop_code,
            containers=[ContainerState(name=CONTAINER, last_status=last_status, exit_code=exit_code)],
            overrides=TaskOverrides(
                container_overrides=[ContainerOverride(name=CONTAINER, environment=environment)]
            ),
        ),
    )
