"""In-memory LiveKit: the twin of ``LiveKitApiGateway`` and the state the fake Twirp server serves.

It models the LiveKit behaviour the control plane depends on, so the core meets the same traps
in unit tests as in production: a dispatch gets a job only if a worker for its agent name is
registered when it is created (otherwise it keeps zero jobs forever), creating a dispatch is not
idempotent, dispatches and participants vanish with their room, and a dispatch or a joining
participant opens a missing room (LiveKit's ``auto_create``). A job carries the identity its
worker accepted it with: LiveKit's default ``agent-<job id>``, or the task's own identity once
:meth:`InMemoryLiveKit.hand_job` gives it to that task's worker. A lock guards the state because
the fake server reads it from its own thread while a test changes it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from control_plane.ports import (
    Clock,
    Dispatch,
    DispatchJob,
    LiveKitUnavailable,
    LiveParticipant,
    LiveRoom,
)
from control_plane.worker_protocol import agent_identity

DEFAULT_DEPARTURE_TIMEOUT = 20
DEFAULT_EMPTY_TIMEOUT = 300
STANDARD_KIND = 0
EGRESS_KIND = 2
AGENT_KIND = 4
DEPENDENT_KINDS = (EGRESS_KIND, AGENT_KIND)  # LiveKit's IsDependent: never counted, never keep a room open


class _WallClock:
    def now(self) -> float:
        return time.time()


@dataclass
class _RoomState:
    room: LiveRoom
    participants: dict[str, LiveParticipant] = field(default_factory=dict)
    dispatches: dict[str, Dispatch] = field(default_factory=dict)

    def snapshot(self) -> LiveRoom:
        """``num_participants`` as LiveKit counts it: agents and egress left out."""
        counted = sum(p.kind not in DEPENDENT_KINDS for p in self.participants.values())
        return replace(self.room, num_participants=counted)


class InMemoryLiveKit:
    """A LiveKit server in a dict: implements ``LiveKitGateway`` plus helpers tests drive it with."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or _WallClock()
        self._lock = threading.Lock()
        self._rooms: dict[str, _RoomState] = {}
        self._workers: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._down = False
        self.calls: Counter[str] = Counter()

    # --- LiveKitGateway -------------------------------------------------------------------

    def list_dispatches(self, room: str) -> list[Dispatch]:
        """Dispatches of ``room``; a room that does not exist has none."""
        with self._serving("list_dispatches"):
            state = self._rooms.get(room)
            return list(state.dispatches.values()) if state else []

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        """Always adds a dispatch; it gets a running job only if a worker is registered right now."""
        with self._serving("create_dispatch"):
            state = self._open(room, 0, 0)
            job_id = self._new_id("AJ")
            jobs = (
                (DispatchJob(job_id, "JS_RUNNING", f"agent-{job_id}"),) if self._workers[agent_name] else ()
            )
            dispatch = Dispatch(
                dispatch_id=self._new_id("AD"),
                room=room,
                agent_name=agent_name,
                metadata=metadata,
                created_at=self._clock.now(),
                jobs=jobs,
            )
            state.dispatches[dispatch.dispatch_id] = dispatch
            for job in jobs:
                sid = _agent_sid(job.job_id)
                state.participants[sid] = LiveParticipant(
                    sid=sid, identity=job.participant_identity, kind=AGENT_KIND, joined_at=self._clock.now()
                )
            return dispatch

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        """Removes the dispatch and its jobs; a dispatch or room already gone is fine."""
        with self._serving("delete_dispatch"):
            state = self._rooms.get(room)
            if state:
                gone = state.dispatches.pop(dispatch_id, None)
                for job in gone.jobs if gone else ():
                    state.participants.pop(_agent_sid(job.job_id), None)

    def list_participants(self, room: str) -> list[LiveParticipant]:
        with self._serving("list_participants"):
            state = self._rooms.get(room)
            return list(state.participants.values()) if state else []

    def list_rooms(self) -> list[LiveRoom]:
        with self._serving("list_rooms"):
            return [state.snapshot() for state in self._rooms.values()]

    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        """Opens the room with these timeouts; an open room is returned unchanged, as LiveKit's
        CreateRoom does (v1.13.5 ``getOrCreateRoom``: the second call's timeouts are ignored)."""
        with self._serving("create_room"):
            return self._open(name, departure_timeout, empty_timeout).snapshot()

    # --- test helpers (not counted, work while down) --------------------------------------

    @property
    def is_down(self) -> bool:
        return self._down

    def set_down(self, down: bool) -> None:
        """While down, every gateway call raises LiveKitUnavailable and changes nothing."""
        self._down = down

    def register_worker(self, agent_name: str) -> None:
        """A worker for ``agent_name`` connects; dispatches created from now on get a job."""
        with self._lock:
            self._workers[agent_name] += 1

    def unregister_worker(self, agent_name: str) -> None:
        """A worker disconnects; jobs it already runs are left as they are."""
        with self._lock:
            if self._workers[agent_name] == 0:
                raise ValueError(f"no worker registered for {agent_name!r}")
            self._workers[agent_name] -= 1

    def open_room(
        self,
        name: str,
        departure_timeout: int = 0,
        empty_timeout: int = 0,
    ) -> LiveRoom:
        """Open a room, or change an open one as the room's own server would (what CreateRoom
        cannot do); a timeout of 0 keeps the default or current value."""
        with self._lock:
            state = self._open(name, departure_timeout, empty_timeout)
            if departure_timeout > 0:
                state.room = replace(state.room, departure_timeout=departure_timeout)
            if empty_timeout > 0:
                state.room = replace(state.room, empty_timeout=empty_timeout)
            return state.snapshot()

    def close_room(self, name: str) -> bool:
        """LiveKit closes the room: its participants and dispatches go with it. False if not open."""
        with self._lock:
            return self._rooms.pop(name, None) is not None

    def add_participant(
        self, room: str, sid: str, identity: str, kind: int = STANDARD_KIND
    ) -> LiveParticipant:
        """A participant joins, opening the room if needed; ``kind`` is ``ParticipantInfo.Kind``."""
        with self._lock:
            state = self._open(room, 0, 0)
            participant = LiveParticipant(sid=sid, identity=identity, kind=kind, joined_at=self._clock.now())
            state.participants[sid] = participant
            return participant

    def remove_participant(self, room: str, sid: str) -> bool:
        """A participant leaves (the room stays open, as LiveKit keeps it for departure_timeout)."""
        with self._lock:
            state = self._rooms.get(room)
            return state is not None and state.participants.pop(sid, None) is not None

    def get_room(self, name: str) -> LiveRoom | None:
        with self._lock:
            state = self._rooms.get(name)
            return state.snapshot() if state else None

    def get_dispatch(self, room: str, dispatch_id: str) -> Dispatch | None:
        with self._lock:
            state = self._rooms.get(room)
            return state.dispatches.get(dispatch_id) if state else None

    def hand_job(
        self, room: str, task_arn: str, job_id: str | None = None, dispatch_id: str | None = None
    ) -> DispatchJob:
        """LiveKit hands the job of the room's dispatch (``dispatch_id``, else the newest) to the
        worker of ``task_arn``, which accepts it as :func:`agent_identity` and joins the room.
        A dispatch without a job gets one; ``job_id`` names the job (tests that name theirs)."""
        with self._lock:
            state = self._rooms[room]
            dispatch = (
                state.dispatches[dispatch_id]
                if dispatch_id is not None
                else max(state.dispatches.values(), key=lambda d: d.created_at)
            )
            old = dispatch.jobs[0] if dispatch.jobs else None
            new_id = job_id or (old.job_id if old else self._new_id("AJ"))
            job = DispatchJob(new_id, "JS_RUNNING", agent_identity(new_id, task_arn))
            state.dispatches[dispatch.dispatch_id] = replace(dispatch, jobs=(job, *dispatch.jobs[1:]))
            if old is not None:
                state.participants.pop(_agent_sid(old.job_id), None)
            sid = _agent_sid(new_id)
            state.participants[sid] = LiveParticipant(
                sid=sid, identity=job.participant_identity, kind=AGENT_KIND, joined_at=self._clock.now()
            )
            return job

    def end_jobs(self, room: str, dispatch_id: str, status: str = "JS_FAILED") -> None:
        """The dispatch's jobs end (the agent's job crashed or shut down); the dispatch stays."""
        with self._lock:
            dispatch = self._rooms[room].dispatches[dispatch_id]
            ended = tuple(replace(job, status=status) for job in dispatch.jobs)
            self._rooms[room].dispatches[dispatch_id] = replace(dispatch, jobs=ended)
            for job in dispatch.jobs:
                self._rooms[room].participants.pop(_agent_sid(job.job_id), None)

    # --- internals -----------------------------------------------------------------------

    @contextmanager
    def _serving(self, method: str) -> Iterator[None]:
        with self._lock:
            self.calls[method] += 1
            if self._down:
                raise LiveKitUnavailable(f"LiveKit {method} failed: unavailable (twin is down)")
            yield

    def _open(self, name: str, departure_timeout: int, empty_timeout: int) -> _RoomState:
        state = self._rooms.get(name)
        if state is not None:
            return state
        room = LiveRoom(
            sid=self._new_id("RM"),
            name=name,
            num_participants=0,
            departure_timeout=departure_timeout or DEFAULT_DEPARTURE_TIMEOUT,
            created_at=self._clock.now(),
            empty_timeout=empty_timeout or DEFAULT_EMPTY_TIMEOUT,
        )
        state = self._rooms[name] = _RoomState(room)
        return state

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"


def _agent_sid(job_id: str) -> str:
    """A running job is a participant of kind AGENT in the room, as in LiveKit."""
    return f"PA_{job_id}"
