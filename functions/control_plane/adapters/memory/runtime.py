"""In-memory twins of the ECS runner, the SQS timer queue, the clock and the metrics sink."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from control_plane.ports import (
    Clock,
    LaunchedTask,
    LaunchFailed,
    LaunchOutcomeUnknown,
    RunnerUnavailable,
    TaskSnapshot,
)
from control_plane.worker_protocol import TimerMessage

ECS_PAGE_SIZE = 100


class VirtualClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


@dataclass
class FakeTask:
    arn: str
    room: str | None
    launch_token: str
    created_at: float
    running: bool = True
    stop_reason: str | None = None
    stop_code: str | None = None
    exit_code: int | None = None

    def snapshot(self) -> TaskSnapshot:
        status = "RUNNING" if self.running else "STOPPED"
        return TaskSnapshot(
            task_arn=self.arn,
            last_status=status,
            desired_status=status,
            created_at=self.created_at,
            started_at=self.created_at,
            launch_token=self.launch_token,
            room=self.room,
            stop_code=self.stop_code,
            exit_codes=() if self.running else (self.exit_code,),
        )


class InMemoryRunner:
    """Honours the launch token like ECS ``clientToken`` does: the same token, the same task.

    ``calls`` counts ECS API calls as the real adapter would make them (ListTasks pages and
    DescribeTasks chunks of 100); ``listing_fails`` makes listing raise like a throttled ECS.
    ``fail_next_launches`` refuses launches (nothing starts); ``lose_next_launch_replies``
    starts the task but raises LaunchOutcomeUnknown, like a RunTask that timed out after ECS
    acted: ``find_launched`` then finds it by its token.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.tasks: dict[str, FakeTask] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next_launches = 0
        self.lose_next_launch_replies = 0
        self.listing_fails = False

    @property
    def run_task_calls(self) -> int:
        return self.calls["RunTask"]

    def launch(self, room: str | None, launch_token: str, count: int = 1) -> list[LaunchedTask]:
        with self._lock:
            self.calls["RunTask"] += 1
            if self.fail_next_launches:
                self.fail_next_launches -= 1
                raise LaunchFailed("RESOURCE:FARGATE capacity unavailable")
            launched = self._tasks_for(room, launch_token, count)
            if self.lose_next_launch_replies:
                self.lose_next_launch_replies -= 1
                raise LaunchOutcomeUnknown("ReadTimeoutError: RunTask reply lost (twin)")
            return launched

    def _tasks_for(self, room: str | None, launch_token: str, count: int) -> list[LaunchedTask]:
        """The tasks a token already started (whatever the room, as ECS answers a reused
        ``clientToken``), else new ones."""
        known = [
            LaunchedTask(t.arn, launch_token) for t in self.tasks.values() if t.launch_token == launch_token
        ]
        if known:
            return known
        launched = []
        for _ in range(count):
            arn = f"arn:aws:ecs:us-east-1:123456789012:task/agents/{next(self._ids):032x}"
            self.tasks[arn] = FakeTask(arn=arn, room=room, launch_token=launch_token, created_at=self._now())
            launched.append(LaunchedTask(arn, launch_token))
        return launched

    def find_launched(self, launch_token: str) -> str | None:
        with self._lock:
            for task in self.tasks.values():
                if task.launch_token == launch_token and task.running:
                    return task.arn
            return None

    def stop(self, task_arn: str, reason: str) -> None:
        with self._lock:
            self.calls["StopTask"] += 1
            task = self.tasks.get(task_arn)
            if task is not None and task.running:
                task.running = False
                task.stop_reason = reason
                task.stop_code = "UserInitiated"
                task.exit_code = 143  # SIGTERM

    def list_tasks(self) -> list[TaskSnapshot]:
        with self._lock:
            running = [task.snapshot() for task in self.tasks.values() if task.running]
            self._count_listing(len(running), pages=True)
            return running

    def describe_tasks(self, task_arns: Sequence[str]) -> list[TaskSnapshot]:
        with self._lock:
            self._count_listing(len(task_arns), pages=False)
            return [self.tasks[arn].snapshot() for arn in task_arns if arn in self.tasks]

    # --- test helpers ---------------------------------------------------------------------

    def crash(
        self, task_arn: str, stop_code: str = "EssentialContainerExited", exit_code: int | None = 1
    ) -> None:
        """The task dies on its own, as ECS would report it."""
        with self._lock:
            task = self.tasks[task_arn]
            task.running = False
            task.stop_reason = "crashed"
            task.stop_code = stop_code
            task.exit_code = exit_code

    def start_foreign(self, room: str, launch_token: str, created_at: float) -> str:
        """A task with our ``startedBy`` that no launch of ours recorded (an orphan)."""
        with self._lock:
            arn = f"arn:aws:ecs:us-east-1:123456789012:task/agents/{next(self._ids):032x}"
            self.tasks[arn] = FakeTask(arn=arn, room=room, launch_token=launch_token, created_at=created_at)
            return arn

    def running(self) -> list[FakeTask]:
        return [task for task in self.tasks.values() if task.running]

    def _count_listing(self, tasks: int, pages: bool) -> None:
        if self.listing_fails:
            self.calls["ListTasks" if pages else "DescribeTasks"] += 1
            raise RunnerUnavailable("ThrottlingException: Rate exceeded (twin)")
        chunks = max(1, -(-tasks // ECS_PAGE_SIZE))
        if pages:
            self.calls["ListTasks"] += chunks
            if tasks:
                self.calls["DescribeTasks"] += chunks
        elif tasks:
            self.calls["DescribeTasks"] += chunks

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else time.time()


@dataclass
class ScheduledMessage:
    message: TimerMessage
    due_at: float


class InMemoryTimers:
    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.sent: list[ScheduledMessage] = []

    def send(self, message: TimerMessage, delay_seconds: int) -> None:
        if not 0 <= delay_seconds <= 900:
            raise ValueError("SQS DelaySeconds must be within 0..900")
        with self._lock:
            self.sent.append(ScheduledMessage(message, self._clock.now() + delay_seconds))

    def take_due(self) -> list[TimerMessage]:
        """Messages whose delay has passed, in due order; removes them like a consumer would."""
        with self._lock:
            now = self._clock.now()
            due = sorted((s for s in self.sent if s.due_at <= now), key=lambda s: s.due_at)
            self.sent = [s for s in self.sent if s.due_at > now]
            return [s.message for s in due]


@dataclass
class InMemoryMetrics:
    """``counts`` sums each metric over all its dimensions; ``labelled`` keeps them apart."""

    counts: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    values: dict[str, list[float]] = field(default_factory=dict)
    labelled: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(
        self, name: str, value: float = 1, unit: str = "Count", dimensions: Mapping[str, str] | None = None
    ) -> None:
        with self._lock:
            self.counts[name] += value
            self.values.setdefault(name, []).append(value)
            self.labelled[name, tuple(sorted((dimensions or {}).items()))] += value

    def count_for(self, name: str, **dimensions: str) -> float:
        """The total of ``name`` with exactly these dimensions."""
        return self.labelled.get((name, tuple(sorted(dimensions.items()))), 0.0)
