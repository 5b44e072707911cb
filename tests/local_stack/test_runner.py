"""The local runner keeps the promises of the ECS runner: one launch per token, our tasks only,
StopTask semantics, and a state change event for each change, with the exit code."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from control_plane.task_events import EcsTaskStateChange, is_crash
from local.stack.runner import LocalRunner
from local.stack.timeline import Timeline
from tests.local_stack.helpers import eventually


class Sleeper:
    """A task that runs until signalled, or exits with ``code`` after ``seconds``."""

    def __init__(self, seconds: float = 60.0, code: int = 0) -> None:
        self._script = f"import sys, time; time.sleep({seconds}); sys.exit({code})"

    def command(self, task_arn: str) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-c", self._script], {}


class Events:
    def __init__(self) -> None:
        self.seen: list[EcsTaskStateChange] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append(EcsTaskStateChange.model_validate(event))

    def of(self, task_arn: str, last_status: str) -> EcsTaskStateChange | None:
        with self._lock:
            return next(
                (
                    e
                    for e in self.seen
                    if e.detail.task_arn == task_arn and e.detail.last_status == last_status
                ),
                None,
            )


def runner(tmp_path: Path, events: Events, program: Sleeper | None = None) -> LocalRunner:
    return LocalRunner(
        program or Sleeper(), events, Timeline(), tmp_path, cluster="local", stop_timeout_seconds=2.0
    )


def test_a_launch_token_starts_its_tasks_once(tmp_path: Path) -> None:
    events = Events()
    tasks = runner(tmp_path, events)
    try:
        first = tasks.launch("standup", "token-1")
        again = tasks.launch("standup", "token-1")
        pool = tasks.launch(None, "token-2", count=3)

        assert first == again
        assert len(pool) == 3 and len({t.task_arn for t in pool}) == 3
        assert tasks.find_launched("token-1") == first[0].task_arn
        listed = {t.task_arn: t for t in tasks.list_tasks()}
        assert set(listed) == {first[0].task_arn, *(t.task_arn for t in pool)}
        assert (
            listed[first[0].task_arn].room == "standup"
            and listed[first[0].task_arn].launch_token == "token-1"
        )
        assert all(listed[t.task_arn].room is None for t in pool)
        running = events.of(first[0].task_arn, "RUNNING")
        assert running is not None
        assert running.detail.started_by == "livekit-agent-lifecycle"
        assert running.detail.cluster_arn.endswith(":cluster/local")
        assert running.detail.environment("LAUNCHED_FOR_ROOM") == "standup"
        assert running.detail.environment("LAUNCH_TOKEN") == "token-1"
    finally:
        tasks.close()
    assert not tasks.running()


def test_stop_is_sigterm_and_reports_a_user_initiated_stop(tmp_path: Path) -> None:
    events = Events()
    tasks = runner(tmp_path, events)
    try:
        [task] = tasks.launch("standup", "token-1")
        tasks.stop(task.task_arn, "room standup closed")
        tasks.stop(task.task_arn, "again: a no-op")

        assert tasks.list_tasks() == [], "a task asked to stop is no longer meant to run"
        stopped = eventually("the STOPPED event", lambda: events.of(task.task_arn, "STOPPED"), timeout=10)
        assert stopped.detail.stop_code == "UserInitiated"
        assert stopped.detail.stopped_reason == "room standup closed"
        assert [c.exit_code for c in stopped.detail.containers] == [143]
        [described] = tasks.describe_tasks(
            [task.task_arn, "arn:aws:ecs:us-east-1:123456789012:task/local/gone"]
        )
        assert described.last_status == "STOPPED" and described.exit_codes == (143,)
        assert tasks.launch("standup", "token-1") == [task], "a token answers its tasks, stopped or not"
    finally:
        tasks.close()


def test_a_task_that_exits_on_its_own_reports_its_exit_code(tmp_path: Path) -> None:
    events = Events()
    tasks = runner(tmp_path, events, Sleeper(seconds=0, code=3))
    try:
        [task] = tasks.launch("standup", "token-1")
        stopped = eventually("the STOPPED event", lambda: events.of(task.task_arn, "STOPPED"), timeout=10)
        detail = stopped.detail
        assert detail.stop_code == "EssentialContainerExited"
        assert [c.exit_code for c in detail.containers] == [3]
        assert is_crash(detail.stop_code, [c.exit_code for c in detail.containers], draining=False)
        assert detail.version > events.of(task.task_arn, "RUNNING").detail.version  # type: ignore[union-attr]
    finally:
        tasks.close()
