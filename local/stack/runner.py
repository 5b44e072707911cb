"""A local ``AgentRunner``: each agent task is a process on this machine.

It keeps ECS's promises the core relies on: a launch token starts its tasks once (a repeated
token answers the same tasks, as ``clientToken`` does), every task carries the ``startedBy``
marker and the room and token it was launched with, ``stop`` is SIGTERM then SIGKILL after the
stop timeout (Fargate's ``stopTimeout``), and ``list_tasks`` shows only tasks meant to run. Each
change of a task is sent as the "ECS Task State Change" event EventBridge would deliver (RUNNING
when started, STOPPED with the exit code when the process ends) to ``on_event``.

What a task runs is a :class:`WorkerProgram`: the simulator's lightweight worker, or the real
agent worker. Its output goes to a log file per task.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from control_plane.ports import LaunchedTask, LaunchFailed, TaskSnapshot
from control_plane.settings import TASK_STARTED_BY
from control_plane.worker_protocol import LAUNCH_TOKEN_ENV, LAUNCHED_FOR_ROOM_ENV
from local.stack.events import ACCOUNT, REGION, ecs_task_state_change
from local.stack.timeline import Timeline, short_task

MAX_TASKS_PER_LAUNCH = 10  # RunTask's count
USER_INITIATED = "UserInitiated"
CONTAINER_EXITED = "EssentialContainerExited"
SIGNAL_EXIT_BASE = 128  # a process killed by signal N exits 128 + N, as ECS reports it

EventSink = Callable[[dict[str, Any]], None]


class WorkerProgram(Protocol):
    def command(self, task_arn: str) -> tuple[list[str], dict[str, str]]:
        """The argv and the environment (besides the launch's own variables) of one task."""
        ...


@dataclass
class LocalTask:
    arn: str
    room: str | None
    launch_token: str
    created_at: float
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    version: int = 1
    desired_status: str = "RUNNING"
    last_status: str = "RUNNING"
    stop_code: str | None = None
    stopped_reason: str | None = None
    exit_code: int | None = None
    kill_timer: threading.Timer | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.last_status != "STOPPED"

    def snapshot(self) -> TaskSnapshot:
        return TaskSnapshot(
            task_arn=self.arn,
            last_status=self.last_status,
            desired_status=self.desired_status,
            created_at=self.created_at,
            started_at=self.created_at,
            launch_token=self.launch_token,
            room=self.room,
            stop_code=self.stop_code,
            exit_codes=() if self.running else (self.exit_code,),
        )


class LocalRunner:
    def __init__(
        self,
        program: WorkerProgram,
        on_event: EventSink,
        timeline: Timeline,
        log_dir: Path,
        *,
        cluster: str,
        stop_timeout_seconds: float = 10.0,
        started_by: str = TASK_STARTED_BY,
        region: str = REGION,
    ) -> None:
        self._program = program
        self._on_event = on_event
        self._timeline = timeline
        self._log_dir = log_dir
        self._cluster = cluster
        self._stop_timeout = stop_timeout_seconds
        self._started_by = started_by
        self._region = region
        self._lock = threading.Lock()
        self._tasks: dict[str, LocalTask] = {}
        self._watchers: list[threading.Thread] = []
        self._closing = False

    # --- the AgentRunner port -------------------------------------------------------------

    def launch(self, room: str | None, launch_token: str, count: int = 1) -> list[LaunchedTask]:
        if not 1 <= count <= MAX_TASKS_PER_LAUNCH:
            raise LaunchFailed(f"count must be 1..{MAX_TASKS_PER_LAUNCH}, not {count}")
        with self._lock:
            known = [task for task in self._tasks.values() if task.launch_token == launch_token]
            if known:
                return [LaunchedTask(task.arn, launch_token) for task in known]
            if self._closing:
                raise LaunchFailed("the local stack is stopping")
            started = [self._start(room, launch_token) for _ in range(count)]
        for task in started:
            for_what = f"room {room}" if room is not None else "the warm pool"
            self._timeline.emit(
                "runner", f"task {short_task(task.arn)} started for {for_what} (pid {task.process.pid})", room
            )
            self._send(task)
        return [LaunchedTask(task.arn, launch_token) for task in started]

    def find_launched(self, launch_token: str) -> str | None:
        with self._lock:
            for task in self._tasks.values():
                if task.launch_token == launch_token and task.running:
                    return task.arn
        return None

    def stop(self, task_arn: str, reason: str) -> None:
        with self._lock:
            task = self._tasks.get(task_arn)
            if task is None or not task.running or task.desired_status == "STOPPED":
                return
            task.desired_status = "STOPPED"
            task.stop_code = USER_INITIATED
            task.stopped_reason = reason
            task.version += 1
            self._terminate(task)
        self._timeline.emit("runner", f"task {short_task(task_arn)} asked to stop: {reason}")
        self._send(task)

    def list_tasks(self) -> list[TaskSnapshot]:
        with self._lock:
            return [task.snapshot() for task in self._tasks.values() if task.desired_status == "RUNNING"]

    def describe_tasks(self, task_arns: Sequence[str]) -> list[TaskSnapshot]:
        with self._lock:
            return [self._tasks[arn].snapshot() for arn in task_arns if arn in self._tasks]

    # --- for the stack --------------------------------------------------------------------

    def running(self) -> list[TaskSnapshot]:
        """Tasks whose process has not exited yet."""
        with self._lock:
            return [task.snapshot() for task in self._tasks.values() if task.running]

    def pids(self) -> dict[str, int]:
        """Task ARN to process id, for every task whose process has not exited."""
        with self._lock:
            return {task.arn: task.process.pid for task in self._tasks.values() if task.running}

    def started(self) -> int:
        with self._lock:
            return len(self._tasks)

    def close(self) -> None:
        """SIGTERM every task, SIGKILL what is left after the stop timeout; no event is sent
        (the functions are stopping too: the next stack's sweep finds the tasks gone)."""
        with self._lock:
            self._closing = True
            for task in self._tasks.values():
                if task.running:
                    self._terminate(task)
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.join(timeout=self._stop_timeout + 5)

    # --- processes ------------------------------------------------------------------------

    def _start(self, room: str | None, launch_token: str) -> LocalTask:
        arn = f"arn:aws:ecs:{self._region}:{ACCOUNT}:task/{self._cluster}/{uuid.uuid4().hex}"
        argv, env = self._program.command(arn)
        env = env | {LAUNCH_TOKEN_ENV: launch_token, "TASK_ARN": arn}
        if room is not None:
            env[LAUNCHED_FOR_ROOM_ENV] = room
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = (self._log_dir / f"task-{arn.rsplit('/', 1)[-1][:8]}.log").open("ab")
        try:
            # Its own session: Ctrl-C reaches the stack, which stops the tasks in order.
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as error:
            log.close()
            raise LaunchFailed(f"could not start {argv[0]}: {error}") from error
        task = LocalTask(arn, room, launch_token, time.time(), process, log)
        self._tasks[arn] = task
        watcher = threading.Thread(target=self._watch, args=(task,), name=f"task-{arn[-8:]}", daemon=True)
        self._watchers.append(watcher)
        watcher.start()
        return task

    def _terminate(self, task: LocalTask) -> None:
        """SIGTERM now, SIGKILL after the stop timeout (called with the lock held)."""
        if task.kill_timer is not None:
            return
        _signal(task.process, signal.SIGTERM)
        task.kill_timer = threading.Timer(self._stop_timeout, _signal, (task.process, signal.SIGKILL))
        task.kill_timer.daemon = True
        task.kill_timer.start()

    def _watch(self, task: LocalTask) -> None:
        code = task.process.wait()
        task.log.close()
        with self._lock:
            if task.kill_timer is not None:
                task.kill_timer.cancel()
            task.exit_code = code if code >= 0 else SIGNAL_EXIT_BASE - code
            task.last_status = task.desired_status = "STOPPED"
            if task.stop_code is None:
                task.stop_code = CONTAINER_EXITED
                task.stopped_reason = "Essential container in task exited"
            task.version += 1
            closing = self._closing
        self._timeline.emit("runner", f"task {short_task(task.arn)} exited {task.exit_code}")
        if not closing:
            self._send(task)

    def _send(self, task: LocalTask) -> None:
        event = ecs_task_state_change(
            task.arn,
            task.last_status,
            task.version,
            room=task.room,
            launch_token=task.launch_token,
            desired_status=task.desired_status,
            stop_code=task.stop_code,
            stopped_reason=task.stopped_reason,
            exit_code=task.exit_code,
            started_by=self._started_by,
            cluster=self._cluster,
            at=datetime.now(UTC),
            region=self._region,
        )
        self._on_event(event)


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        process.send_signal(signum)
