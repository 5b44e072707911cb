"""Watches the table: what the live page shows and the room lines of the timeline.

Every ``interval`` it reads the rooms that need attention (the sweeper's sparse index, never a
scan), the rooms it saw before (so a closed room shows as closed) and the live worker records,
through the core's own DynamoDB adapter. A change of a room (state, humans, agent) or a worker
(status, jobs, reserved slots) becomes a timeline line; a room in grace counts down to when its
agent really goes: the grace deadline, or LiveKit's ``departure_timeout`` if that comes first.

What the record does not keep, the watcher remembers from what it saw: when each room's agent
joined (its job started), so the page can say how long each human waited for it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.views import CLOSE_REASONS, grace_view, warm_slots
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.ports import TaskSnapshot
from control_plane.room import Room, live_reservations
from control_plane.settings import Settings
from control_plane.worker_protocol import WorkerRecord, agent_identity
from local.stack.timeline import Timeline, short_task

COUNTDOWN_EVERY_SECONDS = 10
COUNTDOWN_LAST_SECONDS = 5
# The settings the page shows as in force, by their variable names.
SHOWN_SETTINGS = (
    "grace_period_seconds",
    "warm_tasks",
    "slots_per_task",
    "jobs_per_task",
    "max_tasks",
    "warm_adaptive",
    "crash_loop_limit",
    "max_agent_age_seconds",
    "worker_stale_seconds",
    "room_departure_margin_seconds",
    "agent_name",
)


@dataclass
class HumanSeen:
    identity: str
    joined_at: float
    left_at: float | None = None
    waited: float | None = None
    """Seconds from connecting until the room's agent was there (0 if it was already)."""


@dataclass
class RoomSeen:
    """What the watcher saw of one LiveKit session of a room."""

    sid: str | None
    agent_token: str | None = None
    agent_joined_at: float | None = None
    humans: dict[str, HumanSeen] = field(default_factory=dict)

    def observe(self, room: Room, now: float) -> None:
        agent = room.agent
        in_room = agent is not None and agent.job_id is not None and room.stop_requested_at is None
        if in_room and agent is not None and agent.launch_token != self.agent_token:
            self.agent_token, self.agent_joined_at = agent.launch_token, now
        elif not in_room:
            self.agent_token = self.agent_joined_at = None
        for sid, human in room.humans.items():
            seen = self.humans.setdefault(sid, HumanSeen(human.identity, human.joined_at))
            if seen.waited is None and self.agent_joined_at is not None:
                seen.waited = round(max(0.0, self.agent_joined_at - human.joined_at), 1)
        for sid, seen in self.humans.items():
            if sid not in room.humans and seen.left_at is None:
                seen.left_at = room.departed.get(sid, now)


def room_view(room: Room, now: float, grace_seconds: int) -> dict[str, Any]:
    agent = room.agent
    grace = grace_view(room, grace_seconds)
    ends_at = None if grace is None else min(grace.deadline, grace.livekit_closes_at or grace.deadline)
    return {
        "name": room.name,
        "sid": room.sid,
        "state": room.state.value,
        "humans": [{"sid": sid, "identity": human.identity} for sid, human in sorted(room.humans.items())],
        "reservations": [
            {"identity": identity, "until": until}
            for identity, until in sorted(live_reservations(room, now).items())
        ],
        "agent": None
        if agent is None
        else {
            "task_arn": agent.task_arn,
            "task": short_task(agent.task_arn) if agent.task_arn else None,
            "slot_reserved": agent.slot_reserved,
            "dispatch_id": agent.dispatch_id,
            "job_id": agent.job_id,
            "identity": agent_identity(agent.job_id, agent.task_arn)
            if agent.job_id and agent.task_arn
            else None,
            "dispatched_at": agent.dispatched_at,
        },
        "grace_deadline": grace.deadline if grace else None,
        "grace_why": grace.why if grace else None,
        "livekit_closes_at": grace.livekit_closes_at if grace else None,
        "grace_left": max(0.0, ends_at - now) if ends_at is not None else None,
        "departure_timeout": room.departure_timeout,
        "crashes": len(room.crashes),
        "closed_at": room.closed_at,
        "closed_reason": room.closed_reason.value if room.closed_reason else None,
        "closed_why": CLOSE_REASONS[room.closed_reason] if room.closed_reason else None,
        "updated_at": room.updated_at,
    }


def worker_view(worker: WorkerRecord, now: float, jobs_per_task: int) -> dict[str, Any]:
    return {
        "task_arn": worker.task_arn,
        "task": short_task(worker.task_arn),
        "status": worker.status.value,
        "capacity": worker.capacity,
        "jobs": dict(worker.jobs),
        "reserved": sorted(worker.reserved),
        "assigned": worker.assigned,
        "free_slots": worker.free_slots(jobs_per_task),
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


def pool_view(
    workers: list[WorkerRecord], rooms: list[Room], now: float, settings: Settings
) -> dict[str, Any]:
    """Slots: free on ready workers / all on live ones; warm: free slots no room's agent uses."""
    ready = [w for w in workers if w.is_ready(now, settings.worker_stale_seconds)]
    return {
        "free_slots": sum(w.free_slots(settings.jobs_per_task) for w in ready),
        "total_slots": sum(w.capacity for w in workers),
        "warm_slots": warm_slots(workers, rooms, now, settings.worker_stale_seconds),
        "busy_workers": sum(1 for w in workers if w.rooms()),
        "workers": len(workers),
        "warm_tasks": settings.warm_tasks,
    }


class TableWatcher:
    def __init__(
        self,
        store: DynamoDBStore,
        tasks: Callable[[], list[TaskSnapshot]],
        timeline: Timeline,
        settings: Settings,
        interval_seconds: float = 0.25,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._timeline = timeline
        self._settings = settings
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._rooms: dict[str, Room] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._seen: dict[str, RoomSeen] = {}
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

    def snapshot(self, room: str | None = None) -> dict[str, Any]:
        """What the page shows; with ``room``, that room's detail too."""
        now = time.time()
        grace = self._settings.grace_period_seconds
        with self._lock:
            rooms = [room_view(r, now, grace) for _, r in sorted(self._rooms.items())]
            records = sorted(self._workers.items())
            workers = [worker_view(w, now, self._settings.jobs_per_task) for _, w in records]
            pool = pool_view([w for _, w in records], list(self._rooms.values()), now, self._settings)
        tasks = self._tasks()
        return {
            "now": now,
            "rooms": rooms,
            "workers": workers,
            "tasks": [task_view(task) for task in tasks],
            "pool": pool,
            "settings": {name.upper(): getattr(self._settings, name) for name in SHOWN_SETTINGS}
            | {"departure_timeout of rooms we create": self._settings.departure_timeout},
            "timeline": self._timeline.recent(),
            "detail": None if room is None else self._detail(room, now, tasks),
        }

    def _detail(self, name: str, now: float, tasks: list[TaskSnapshot]) -> dict[str, Any] | None:
        with self._lock:
            room = self._rooms.get(name)
            seen = self._seen.get(name)
            humans = [] if seen is None else [vars(h) | {"sid": sid} for sid, h in seen.humans.items()]
            agent_joined_at = seen.agent_joined_at if seen else None
            worker = (
                self._workers.get(room.agent.task_arn)
                if room and room.agent and room.agent.task_arn
                else None
            )
        if room is None:
            room = self._store.get(name)
            if room is None:
                return None
        view = room_view(room, now, self._settings.grace_period_seconds)
        task_arn = view["agent"]["task_arn"] if view["agent"] else None
        task = next((t for t in tasks if t.task_arn == task_arn), None)
        return view | {
            "humans_seen": sorted(humans, key=lambda h: h["joined_at"]),
            "agent_joined_at": agent_joined_at,
            "worker": None if worker is None else worker_view(worker, now, self._settings.jobs_per_task),
            "task_status": task.last_status if task else None,
            "created_at": room.created_at,
            "timeline": self._timeline.for_room(name),
        }

    def poll(self) -> None:
        """Read the table once and report what changed."""
        rooms = {room.name: room for room in self._store.rooms_needing_attention()}
        for name in set(self._rooms) - set(rooms):
            gone = self._store.get(name)
            if gone is not None:
                rooms[name] = gone
        workers = {worker.task_arn: worker for worker in self._store.live_workers()}
        now = time.time()
        with self._lock:
            self._rooms, self._workers = rooms, workers
            for room in rooms.values():
                seen = self._seen.get(room.name)
                if seen is None or seen.sid != room.sid:
                    seen = self._seen[room.name] = RoomSeen(room.sid)
                seen.observe(room, now)
        for room in rooms.values():
            self._say(f"room:{room.name}", "room", _describe_room(room), room.name)
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

    def _say(self, key: str, source: str, text: str, room: str | None = None) -> None:
        if self._said.get(key) != text:
            self._said[key] = text
            self._timeline.emit(source, text, room)

    def _count_down(self, room: Room, now: float) -> None:
        grace = grace_view(room, self._settings.grace_period_seconds)
        if grace is None:
            self._countdown.pop(room.name, None)
            return
        by_livekit = grace.livekit_closes_at is not None
        left = math.ceil((grace.livekit_closes_at or grace.deadline) - now)
        if left <= 0 or self._countdown.get(room.name) == left:
            return
        if left <= COUNTDOWN_LAST_SECONDS or left % COUNTDOWN_EVERY_SECONDS == 0:
            self._countdown[room.name] = left
            text = (
                f"LiveKit closes the room in {left}s (departure_timeout), before the grace deadline"
                if by_livekit
                else f"the agent leaves in {left}s unless a human returns"
            )
            self._timeline.emit("grace", f"{room.name}: {text}", room.name)


def _describe_room(room: Room) -> str:
    humans = ", ".join(sorted(human.identity for human in room.humans.values())) or "none"
    text = f"{room.name}: {room.state.value} | humans {humans}"
    agent = room.agent
    if agent is not None:
        on = f"task {short_task(agent.task_arn)}" if agent.task_arn else "no task yet"
        text += f" | agent {on}, dispatch {agent.dispatch_id or '-'}"
    if room.closed_reason is not None:
        text += f" | {'closing' if agent is not None else 'closed'}: {CLOSE_REASONS[room.closed_reason]}"
    return text


def _describe_worker(worker: WorkerRecord) -> str:
    jobs = ", ".join(sorted(worker.jobs)) or "none"
    reserved = ", ".join(sorted(worker.reserved)) or "none"
    draining = " | draining" if worker.draining else ""
    return (
        f"task {short_task(worker.task_arn)}: {worker.status.value} | {worker.capacity} slot(s) | "
        f"jobs {jobs} | reserved {reserved}{draining}"
    )
