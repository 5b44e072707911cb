"""Watches the table: what the live page shows and the room lines of the timeline.

Every ``interval`` it reads the rooms that need attention (the sweeper's sparse index, never a
scan), the rooms it saw before (so a closed room shows as closed) and the live worker records,
through the core's own DynamoDB adapter. A change of a room (state, humans, agent) or a worker
(status, jobs, reserved slots) becomes a timeline line; a room in grace counts down.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.ports import TaskSnapshot
from control_plane.room import Room
from control_plane.worker_protocol import WorkerRecord
from local.stack.timeline import Timeline, short_task

COUNTDOWN_EVERY_SECONDS = 10
COUNTDOWN_LAST_SECONDS = 5


def room_view(room: Room, now: float) -> dict[str, Any]:
    agent = room.agent
    return {
        "name": room.name,
        "state": room.state.value,
        "humans": [{"sid": sid, "identity": human.identity} for sid, human in sorted(room.humans.items())],
        "agent": None
        if agent is None
        else {
            "task_arn": agent.task_arn,
            "task": short_task(agent.task_arn) if agent.task_arn else None,
            "dispatch_id": agent.dispatch_id,
            "job_id": agent.job_id,
        },
        "grace_deadline": room.grace.deadline if room.grace else None,
        "grace_left": max(0.0, room.grace.deadline - now) if room.grace else None,
        "crashes": len(room.crashes),
        "updated_at": room.updated_at,
    }


def worker_view(worker: WorkerRecord, now: float) -> dict[str, Any]:
    return {
        "task_arn": worker.task_arn,
        "task": short_task(worker.task_arn),
        "status": worker.status.value,
        "capacity": worker.capacity,
        "jobs": dict(worker.jobs),
        "reserved": sorted(worker.reserved),
        "assigned": worker.assigned,
        "free_slots": max(0, worker.capacity - len(worker.rooms())),
        "draining": worker.draining,
        "launched_for": worker.launched_for,
        "heartbeat_age": round(now - worker.heartbeat_at, 1),
    }


def task_view(task: TaskSnapshot) -> dict[str, Any]:
    return {
        "task_arn": task.task_arn,
        "task": short_task(task.task_arn),
        "room": task.room,
        "last_status": task.last_status,
        "desired_status": task.desired_status,
    }


class TableWatcher:
    def __init__(
        self,
        store: DynamoDBStore,
        tasks: Callable[[], list[TaskSnapshot]],
        timeline: Timeline,
        interval_seconds: float = 0.25,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._timeline = timeline
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._rooms: dict[str, Room] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._said: dict[str, str] = {}
        self._countdown: dict[str, int] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.poll()
        self._thread = threading.Thread(target=self._run, name="table-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            rooms = [room_view(room, now) for _, room in sorted(self._rooms.items())]
            workers = [worker_view(worker, now) for _, worker in sorted(self._workers.items())]
        return {
            "now": now,
            "rooms": rooms,
            "workers": workers,
            "tasks": [task_view(task) for task in self._tasks()],
            "timeline": self._timeline.recent(),
        }

    def poll(self) -> None:
        """Read the table once and report what changed."""
        rooms = {room.name: room for room in self._store.rooms_needing_attention()}
        for name in set(self._rooms) - set(rooms):
            gone = self._store.get(name)
            if gone is not None:
                rooms[name] = gone
        workers = {worker.task_arn: worker for worker in self._store.live_workers()}
        with self._lock:
            self._rooms, self._workers = rooms, workers
        now = time.time()
        for room in rooms.values():
            self._say(f"room:{room.name}", "room", _describe_room(room))
            self._count_down(room, now)
        for worker in workers.values():
            self._say(f"worker:{worker.task_arn}", "worker", _describe_worker(worker))

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.poll()
            except Exception as error:  # moto or the account briefly unreachable: next poll
                self._timeline.emit("watch", f"could not read the table: {error!r}")
                self._stopped.wait(1.0)

    def _say(self, key: str, source: str, text: str) -> None:
        if self._said.get(key) != text:
            self._said[key] = text
            self._timeline.emit(source, text)

    def _count_down(self, room: Room, now: float) -> None:
        if room.grace is None:
            self._countdown.pop(room.name, None)
            return
        left = math.ceil(room.grace.deadline - now)
        if left <= 0 or self._countdown.get(room.name) == left:
            return
        if left <= COUNTDOWN_LAST_SECONDS or left % COUNTDOWN_EVERY_SECONDS == 0:
            self._countdown[room.name] = left
            self._timeline.emit("grace", f"{room.name}: the agent leaves in {left}s unless a human returns")


def _describe_room(room: Room) -> str:
    humans = ", ".join(sorted(human.identity for human in room.humans.values())) or "none"
    text = f"{room.name}: {room.state.value} | humans {humans}"
    agent = room.agent
    if agent is not None:
        on = f"task {short_task(agent.task_arn)}" if agent.task_arn else "no task yet"
        text += f" | agent {on}, dispatch {agent.dispatch_id or '-'}"
    return text


def _describe_worker(worker: WorkerRecord) -> str:
    jobs = ", ".join(sorted(worker.jobs)) or "none"
    reserved = ", ".join(sorted(worker.reserved)) or "none"
    draining = " | draining" if worker.draining else ""
    return (
        f"task {short_task(worker.task_arn)}: {worker.status.value} | {worker.capacity} slot(s) | "
        f"jobs {jobs} | reserved {reserved}{draining}"
    )
