"""In-memory twins of the ECS runner, the SQS timer queue, the clock and the metrics sink."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from control_plane.ports import LaunchedTask, LaunchFailed
from control_plane.worker_protocol import TimerMessage


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
    room: str
    launch_token: str
    running: bool = True
    stop_reason: str | None = None


class InMemoryRunner:
    """Honours the launch token like ECS ``clientToken`` does: the same token, the same task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.tasks: dict[str, FakeTask] = {}
        self.run_task_calls = 0
        self.fail_next_launches = 0

    def launch(self, room: str, launch_token: str) -> LaunchedTask:
        with self._lock:
            self.run_task_calls += 1
            if self.fail_next_launches:
                self.fail_next_launches -= 1
                raise LaunchFailed("RESOURCE:FARGATE capacity unavailable")
            for task in self.tasks.values():
                if task.launch_token == launch_token:
                    return LaunchedTask(task.arn, launch_token)
            arn = f"arn:aws:ecs:us-east-1:123456789012:task/agents/{next(self._ids):032x}"
            self.tasks[arn] = FakeTask(arn=arn, room=room, launch_token=launch_token)
            return LaunchedTask(arn, launch_token)

    def find_launched(self, launch_token: str) -> str | None:
        with self._lock:
            for task in self.tasks.values():
                if task.launch_token == launch_token and task.running:
                    return task.arn
            return None

    def stop(self, task_arn: str, reason: str) -> None:
        with self._lock:
            task = self.tasks.get(task_arn)
            if task is not None and task.running:
                task.running = False
                task.stop_reason = reason

    def running(self) -> list[FakeTask]:
        return [task for task in self.tasks.values() if task.running]


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
    counts: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    values: dict[str, list[float]] = field(default_factory=dict)

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.counts[name] += value
        self.values.setdefault(name, []).append(value)
