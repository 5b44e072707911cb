"""The simulated LiveKit server: the twin's rooms, participants and dispatches, plus what a real
server does by itself: close rooms nobody uses, hand jobs to agent workers, and report every
change as a webhook.

What LiveKit does, as its source has it (livekit/livekit ``pkg/rtc/room.go`` CloseIfEmpty and
RemoveParticipant, ``pkg/service/agentservice.go``, ``pkg/agent/client.go``):

- agents and egress are *dependent* participants: they never keep a room open;
- a room holding only dependent participants closes ``departure_timeout`` after the last
  participant of any kind left, if a non-dependent one ever joined; otherwise ``empty_timeout``
  after it was created. Both are counted in whole seconds (``time.Now().Unix()``) and the server
  checks every second;
- a closing room disconnects everyone (a ``participant_left`` each), then ``room_finished``;
- one participant per identity: a second connection with an identity already in the room
  replaces the first, which leaves (``participant_left``) before the new one joins;
- the room's ``num_participants`` counts non-dependent participants only, and is refreshed at
  most every 5 s (``roomUpdateInterval``): ListRooms and the webhooks' room lag behind joins;
- a new room gets its dispatches as it opens: those of CreateRoom's ``agents``, else one with an
  empty agent name (LiveKit's default "any agent"); CreateRoom on an open room changes nothing;
- a job goes to a worker registered for its agent name that has room for it, picked at random
  weighted by spare capacity (1 - load); with none the job is dropped, logged as "not dispatching
  agent job since no worker is available", and the dispatch keeps no job. Jobs end when their
  dispatch is deleted, their agent leaves or is removed, their room closes, or their worker goes.

A running job's agent is a participant of kind AGENT in the room (the twin names it
``agent-<job id>``). Every change happens under one lock and reports its webhooks as it happens,
so each room's events leave in the order things happened. Drive rooms through this class or the
control endpoint, not the twin's helpers: the twin tells nobody what changed (a room closed
behind the simulator's back is reported, as finished, at the next ``tick``).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from livekit.protocol.models import ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.ports import Clock, Dispatch, LiveParticipant, LiveRoom
from local.livekit_sim.models import (
    DispatchInfo,
    JobAssignment,
    JobInfo,
    JobTermination,
    Participant,
    ParticipantKind,
    RoomInfo,
    WorkerInfo,
    WorkerMessage,
)
from local.livekit_sim.twirp import room_proto

logger = logging.getLogger(__name__)

NO_WORKER = "not dispatching agent job since no worker is available"
ROOM_UPDATE_SECONDS = 5.0  # rtc/room.go roomUpdateInterval: how stale num_participants may be
DEFAULT_DISPATCH = (("", ""),)  # a room created without agents dispatches "any agent"
JOB_STATUS = {"success": "JS_SUCCESS", "failed": "JS_FAILED"}


class UnknownParticipant(LookupError):
    pass


class UnknownWorker(LookupError):
    pass


class UnknownJob(LookupError):
    pass


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _ignore(_: object) -> None:
    return None


@dataclass
class _Member:
    sid: str
    identity: str
    kind: ParticipantKind
    joined_at: float
    name: str = ""
    metadata: str = ""

    def model(self) -> Participant:
        return Participant(
            sid=self.sid,
            identity=self.identity,
            kind=self.kind,
            joined_at=self.joined_at,
            name=self.name,
            metadata=self.metadata,
        )

    def proto(self, state: ParticipantInfo.State) -> ParticipantInfo:
        return ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            kind=ParticipantInfo.Kind.Name(self.kind.number),
            state=state,
            name=self.name,
            metadata=self.metadata,
            joined_at=int(self.joined_at),
            joined_at_ms=int(self.joined_at * 1000),
        )


@dataclass
class _Session:
    """One open room as LiveKit's room manager holds it, beyond what the twin stores."""

    live: LiveRoom
    members: dict[str, _Member] = field(default_factory=dict)
    dispatch_ids: list[str] = field(default_factory=list)
    first_joined_at: float | None = None  # a non-dependent participant's first join
    last_left_at: float | None = None  # any participant's last leave
    reported: int = 0  # num_participants as LiveKit last refreshed it
    refreshed_at: float = 0.0
    dirty: bool = False

    def closes_at(self) -> float | None:
        """When CloseIfEmpty closes the room if nothing changes; None while someone keeps it open.
        LiveKit keeps both instants in whole seconds, so a room may close up to 1 s early."""
        if any(not member.kind.is_dependent for member in self.members.values()):
            return None
        if self.first_joined_at is not None and self.last_left_at is not None:
            return int(self.last_left_at) + self.live.departure_timeout
        return int(self.live.created_at) + self.live.empty_timeout

    def changed(self, now: float) -> None:
        """ProtoProxy.MarkDirty: refresh the count now if the last refresh is old, else later."""
        self.dirty = True
        if now - self.refreshed_at > ROOM_UPDATE_SECONDS:
            self.refresh(now)

    def refresh(self, now: float) -> None:
        self.dirty = False
        count = sum(not member.kind.is_dependent for member in self.members.values())
        if count != self.reported:
            self.reported, self.refreshed_at = count, now

    def room(self) -> LiveRoom:
        return replace(self.live, num_participants=self.reported)


@dataclass
class _Job:
    job_id: str
    dispatch_id: str
    room: str
    worker_id: str | None
    participant_sid: str | None


@dataclass
class _Worker:
    worker_id: str
    agent_name: str
    slots: int
    task_arn: str | None = None
    jobs: set[str] = field(default_factory=set)
    inbox: list[WorkerMessage] = field(default_factory=list)

    @property
    def spare(self) -> float:
        return 1 - len(self.jobs) / self.slots


class SimulatedLiveKit:
    """A ``LiveKitState`` for the Twirp service, plus the control and worker operations.

    ``on_event`` receives each webhook event and ``on_message`` the id of a worker with new
    messages; both are called under the lock, so they must only hand the work on.
    """

    def __init__(
        self,
        twin: InMemoryLiveKit,
        clock: Clock,
        *,
        on_event: Callable[[WebhookEvent], None] = _ignore,
        on_message: Callable[[str], None] = _ignore,
        seed: int | None = None,
        room_defaults: tuple[int, int] = (0, 0),
    ) -> None:
        """``room_defaults``: the ``departure_timeout`` and ``empty_timeout`` of rooms a join or
        a dispatch opens (livekit-server's ``room:`` config; 0 keeps LiveKit's 20 s and 300 s)."""
        self._twin = twin
        self._room_defaults = room_defaults
        self._clock = clock
        self._on_event = on_event
        self._on_message = on_message
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._jobs: dict[str, _Job] = {}
        self._workers: dict[str, _Worker] = {}

    # --- LiveKitState: what the Twirp service calls ------------------------------------------

    @property
    def is_down(self) -> bool:
        return self._twin.is_down

    def create_room(
        self,
        name: str,
        departure_timeout: int,
        empty_timeout: int,
        agents: Sequence[tuple[str, str]] | None = None,
    ) -> LiveRoom:
        """Open the room with these timeouts and dispatches (``(agent_name, metadata)`` pairs);
        a room already open is returned as it is: LiveKit ignores the timeouts and ``agents``."""
        with self._lock:
            if (session := self._open_session(name)) is not None:
                return session.room()
            return self._open(name, departure_timeout, empty_timeout, agents).room()

    def list_rooms(self) -> list[LiveRoom]:
        with self._lock:
            return [self._reported(room) for room in self._twin.list_rooms()]

    def get_room(self, name: str) -> LiveRoom | None:
        with self._lock:
            room = self._twin.get_room(name)
            return None if room is None else self._reported(room)

    def close_room(self, name: str) -> bool:
        """DeleteRoom: everyone is disconnected, jobs end, ``room_finished``. False if not open."""
        with self._lock:
            live = self._twin.get_room(name)
            session = self._sessions.get(name)
            if live is None:
                if session is not None:
                    self._finish(name, session)
                return False
            if session is None or session.live.sid != live.sid:
                session = self._ensure_open(name)
            self._finish(name, session)
            return True

    def list_participants(self, room: str) -> list[LiveParticipant]:
        return self._twin.list_participants(room)

    def remove_participant(self, room: str, sid: str) -> bool:
        """The participant leaves; if it is a job's agent, that job ends (the worker is told)."""
        with self._lock:
            removed = self._twin.remove_participant(room, sid)
            session = self._sessions.get(room)
            member = session.members.get(sid) if session else None
            if session is not None and member is not None:
                self._drop_member(session, member)
            job = next((job for job in self._jobs.values() if job.participant_sid == sid), None)
            if job is not None:
                self._end_job(job, "JS_SUCCESS", reason="agent left the room")
            return removed

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        """Opens the room if needed and gives the dispatch a job on a worker with room for it."""
        with self._lock:
            return self._dispatch(self._ensure_open(room), agent_name, metadata)

    def get_dispatch(self, room: str, dispatch_id: str) -> Dispatch | None:
        return self._twin.get_dispatch(room, dispatch_id)

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        """The dispatch goes; its running jobs are terminated and their agents leave the room."""
        with self._lock:
            self._twin.delete_dispatch(room, dispatch_id)
            for job in [job for job in self._jobs.values() if job.dispatch_id == dispatch_id]:
                self._end_job(job, None, reason="dispatch deleted")

    def list_dispatches(self, room: str) -> list[Dispatch]:
        return self._twin.list_dispatches(room)

    # --- control: participants come and go ----------------------------------------------------

    def join(
        self,
        room: str,
        identity: str,
        kind: ParticipantKind = ParticipantKind.STANDARD,
        name: str = "",
        metadata: str = "",
    ) -> tuple[LiveRoom, Participant]:
        """A participant connects with a new sid, opening the room. One already there with this
        identity is replaced: it leaves first (LiveKit's duplicate identity)."""
        with self._lock:
            return self._join(room, identity, kind, name, metadata)[:2]

    def _join(
        self, room: str, identity: str, kind: ParticipantKind, name: str, metadata: str
    ) -> tuple[LiveRoom, Participant, list[Participant]]:
        session = self._ensure_open(room)
        replaced = [m for m in session.members.values() if m.identity == identity]
        for member in replaced:
            self.remove_participant(room, member.sid)
        joined = self._twin.add_participant(room, _new_id("PA"), identity, kind.number)
        member = _Member(joined.sid, identity, kind, joined.joined_at, name, metadata)
        self._add_member(session, member)
        return session.room(), member.model(), [m.model() for m in replaced]

    def leave(self, room: str, *, sid: str | None = None, identity: str | None = None) -> list[Participant]:
        """The participant with ``sid``, or every one with ``identity``, disconnects."""
        with self._lock:
            session = self._sessions.get(room)
            members = list(session.members.values()) if session else []
            gone = [m for m in members if m.sid == sid or (identity is not None and m.identity == identity)]
            if not gone:
                who = f"sid {sid!r}" if sid is not None else f"identity {identity!r}"
                raise UnknownParticipant(f"no participant with {who} in room {room!r}")
            for member in gone:
                self.remove_participant(room, member.sid)
            return [member.model() for member in gone]

    def refresh(self, room: str, identity: str) -> tuple[Participant, list[Participant]]:
        """A page refresh: the same identity connects again, so its old connection leaves first."""
        with self._lock:
            session = self._sessions.get(room)
            old = [m for m in session.members.values() if m.identity == identity] if session else []
            if not old:
                raise UnknownParticipant(f"no participant with identity {identity!r} in room {room!r}")
            _, joined, left = self._join(room, identity, old[0].kind, old[0].name, old[0].metadata)
            return joined, left

    # --- time ----------------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Close the rooms whose timeout ran out (and report rooms closed behind our back)."""
        with self._lock:
            now = self._clock.now()
            closed: list[str] = []
            for name, session in list(self._sessions.items()):
                live = self._twin.get_room(name)
                due = session.closes_at()
                if live is None or live.sid != session.live.sid or (due is not None and now >= due):
                    self._finish(name, session)
                    closed.append(name)
                elif session.dirty and now - session.refreshed_at >= ROOM_UPDATE_SECONDS:
                    session.refresh(now)
            return closed

    # --- workers -------------------------------------------------------------------------------

    def register_worker(self, agent_name: str, slots: int, task_arn: str | None = None) -> str:
        """A worker for ``agent_name`` connects; dispatches created from now on may go to it.
        One in ``task_arn`` accepts its jobs as that task (``agent_identity``), as ours does."""
        with self._lock:
            worker = _Worker(_new_id("AW"), agent_name, slots, task_arn)
            self._workers[worker.worker_id] = worker
            return worker.worker_id

    def unregister_worker(self, worker_id: str) -> list[str]:
        """The worker disconnects: its jobs fail and their agents leave their rooms."""
        with self._lock:
            worker = self._worker(worker_id)
            ended = sorted(worker.jobs)
            for job_id in ended:
                self._end_job(self._jobs[job_id], "JS_FAILED", reason=None)
            del self._workers[worker_id]
            self._on_message(worker_id)  # a waiting poll learns the worker is gone
            return ended

    def take_messages(self, worker_id: str) -> list[WorkerMessage]:
        with self._lock:
            worker = self._worker(worker_id)
            messages, worker.inbox = worker.inbox, []
            return messages

    def end_job(self, worker_id: str, job_id: str, status: str) -> str:
        """The worker reports its job ended (``success`` or ``failed``); its agent leaves the room."""
        with self._lock:
            if job_id not in self._worker(worker_id).jobs:
                raise UnknownJob(f"worker {worker_id!r} runs no job {job_id!r}")
            self._end_job(self._jobs[job_id], JOB_STATUS[status], reason=None)
            return JOB_STATUS[status]

    # --- state ---------------------------------------------------------------------------------

    def rooms(self) -> list[RoomInfo]:
        """Open rooms as the simulator sees them; reads nothing the twin counts as a call."""
        with self._lock:
            return [self._room_info(session) for _, session in sorted(self._sessions.items())]

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [
                WorkerInfo(worker_id=w.worker_id, agent_name=w.agent_name, slots=w.slots, jobs=sorted(w.jobs))
                for w in self._workers.values()
            ]

    # --- internals -----------------------------------------------------------------------------

    def _open_session(self, name: str) -> _Session | None:
        """The session of the room if it is open; one the twin closed (or reopened) behind our
        back is finished first."""
        live = self._twin.get_room(name)
        session = self._sessions.get(name)
        if session is not None and (live is None or session.live.sid != live.sid):
            self._finish(name, session)
            session = None
        if session is not None and live is not None:
            session.live = live
        elif live is not None:  # opened behind our back: adopted as it is
            session = self._start_session(live, ())
        return session

    def _ensure_open(self, name: str) -> _Session:
        """LiveKit's auto_create: the open room, or a new one with the default timeouts."""
        return self._open_session(name) or self._open(name, *self._room_defaults, None)

    def _open(
        self, name: str, departure_timeout: int, empty_timeout: int, agents: Sequence[tuple[str, str]] | None
    ) -> _Session:
        live = self._twin.create_room(name, departure_timeout, empty_timeout)
        return self._start_session(live, DEFAULT_DISPATCH if agents is None else agents)

    def _start_session(self, live: LiveRoom, agents: Sequence[tuple[str, str]]) -> _Session:
        """``room_started``, then the room's own dispatches, each offered to a worker once."""
        session = self._sessions[live.name] = _Session(live, refreshed_at=self._clock.now())
        self._emit("room_started", session)
        for agent_name, metadata in agents:
            self._dispatch(session, agent_name, metadata)
        return session

    def _reported(self, room: LiveRoom) -> LiveRoom:
        session = self._sessions.get(room.name)
        count = session.reported if session is not None and session.live.sid == room.sid else 0
        return replace(room, num_participants=count)

    def _finish(self, name: str, session: _Session) -> None:
        """Close the room: jobs end, everyone leaves, the twin forgets it, ``room_finished``."""
        for job in [job for job in self._jobs.values() if job.room == name]:
            self._end_job(job, None, reason="room closed")
        for member in list(session.members.values()):
            self._drop_member(session, member)
        live = self._twin.get_room(name)
        if live is not None and live.sid == session.live.sid:
            self._twin.close_room(name)
        del self._sessions[name]
        self._emit("room_finished", session)

    def _add_member(self, session: _Session, member: _Member) -> None:
        session.members[member.sid] = member
        if not member.kind.is_dependent and session.first_joined_at is None:
            session.first_joined_at = member.joined_at
        session.changed(self._clock.now())
        self._emit("participant_joined", session, member, ParticipantInfo.ACTIVE)

    def _drop_member(self, session: _Session, member: _Member) -> None:
        del session.members[member.sid]
        session.last_left_at = self._clock.now()
        session.changed(session.last_left_at)
        self._emit("participant_left", session, member, ParticipantInfo.DISCONNECTED)

    def _dispatch(self, session: _Session, agent_name: str, metadata: str) -> Dispatch:
        """The one offer of the dispatch's job: to a worker picked now, or to nobody, ever."""
        room = session.live.name
        worker = self._pick_worker(agent_name)
        dispatch = self._twin_dispatch(room, agent_name, metadata, worker is not None)
        session.dispatch_ids.append(dispatch.dispatch_id)
        if not dispatch.jobs:
            logger.info(
                NO_WORKER,
                extra={"agent_name": agent_name, "room": room, "room_sid": session.live.sid},
            )
        if worker is not None and worker.task_arn is not None and dispatch.jobs:
            self._twin.hand_job(room, worker.task_arn, dispatch_id=dispatch.dispatch_id)
            dispatch = self._twin.get_dispatch(room, dispatch.dispatch_id) or dispatch
        joined = self._twin.list_participants(room) if dispatch.jobs else []
        agents = {p.identity: p for p in joined if p.sid not in session.members}
        for job in dispatch.jobs:
            self._start_job(session, dispatch, job.job_id, worker, agents.get(job.participant_identity))
        return dispatch

    def _pick_worker(self, agent_name: str) -> _Worker | None:
        """LiveKit's selectWorkerWeightedByLoad: random, weighted by spare capacity."""
        free = [w for w in self._workers.values() if w.agent_name == agent_name and w.spare > 0]
        return self._rng.choices(free, weights=[w.spare for w in free])[0] if free else None

    def _twin_dispatch(self, room: str, agent_name: str, metadata: str, with_job: bool) -> Dispatch:
        """The twin gives a dispatch a job exactly when a worker is registered with it, so one is,
        for the length of this call, when the simulator has picked a worker."""
        if not with_job:
            return self._twin.create_dispatch(room, agent_name, metadata)
        self._twin.register_worker(agent_name)
        try:
            return self._twin.create_dispatch(room, agent_name, metadata)
        finally:
            self._twin.unregister_worker(agent_name)

    def _start_job(
        self,
        session: _Session,
        dispatch: Dispatch,
        job_id: str,
        worker: _Worker | None,
        agent: LiveParticipant | None,
    ) -> None:
        job = _Job(
            job_id=job_id,
            dispatch_id=dispatch.dispatch_id,
            room=dispatch.room,
            worker_id=worker.worker_id if worker else None,
            participant_sid=agent.sid if agent else None,
        )
        self._jobs[job_id] = job
        if agent is not None:
            self._add_member(
                session, _Member(agent.sid, agent.identity, ParticipantKind.AGENT, agent.joined_at)
            )
        if worker is not None:
            worker.jobs.add(job_id)
            self._tell(
                worker,
                JobAssignment(
                    job_id=job_id,
                    dispatch_id=dispatch.dispatch_id,
                    room=dispatch.room,
                    room_sid=session.live.sid,
                    agent_name=dispatch.agent_name,
                    metadata=dispatch.metadata,
                    participant_sid=agent.sid if agent else None,
                    participant_identity=agent.identity if agent else None,
                ),
            )

    def _end_job(self, job: _Job, status: str | None, reason: str | None) -> None:
        """Stop ``job``: its worker's slot frees (told ``reason``, unless it asked), its agent
        leaves, and the twin records ``status`` (None: the dispatch is gone, or going, with it)."""
        del self._jobs[job.job_id]
        worker = self._workers.get(job.worker_id or "")
        if worker is not None:
            worker.jobs.discard(job.job_id)
            if reason is not None:
                self._tell(worker, JobTermination(job_id=job.job_id, room=job.room, reason=reason))
        if status is not None and self._twin.get_dispatch(job.room, job.dispatch_id) is not None:
            self._twin.end_jobs(job.room, job.dispatch_id, status)
        session = self._sessions.get(job.room)
        member = session.members.get(job.participant_sid or "") if session else None
        if session is not None and member is not None:
            self._twin.remove_participant(job.room, member.sid)
            self._drop_member(session, member)

    def _tell(self, worker: _Worker, message: WorkerMessage) -> None:
        worker.inbox.append(message)
        self._on_message(worker.worker_id)

    def _worker(self, worker_id: str) -> _Worker:
        worker = self._workers.get(worker_id)
        if worker is None:
            raise UnknownWorker(f"no worker {worker_id!r} is registered")
        return worker

    def _emit(
        self,
        kind: str,
        session: _Session,
        member: _Member | None = None,
        state: ParticipantInfo.State = ParticipantInfo.ACTIVE,
    ) -> None:
        room = room_proto(session.room())
        event = WebhookEvent(event=kind, id=_new_id("EV"), created_at=int(self._clock.now()), room=room)
        if member is not None:
            event.participant.CopyFrom(member.proto(state))
        self._on_event(event)

    def _room_info(self, session: _Session) -> RoomInfo:
        live = session.live
        dispatches = [
            dispatch
            for dispatch_id in session.dispatch_ids
            if (dispatch := self._twin.get_dispatch(live.name, dispatch_id)) is not None
        ]
        return RoomInfo(
            name=live.name,
            sid=live.sid,
            created_at=live.created_at,
            departure_timeout=live.departure_timeout,
            empty_timeout=live.empty_timeout,
            closes_at=session.closes_at(),
            participants=[member.model() for member in session.members.values()],
            dispatches=[
                DispatchInfo(
                    dispatch_id=d.dispatch_id,
                    agent_name=d.agent_name,
                    metadata=d.metadata,
                    created_at=d.created_at,
                    jobs=[
                        JobInfo(
                            job_id=job.job_id,
                            status=job.status,
                            worker_id=running.worker_id if (running := self._jobs.get(job.job_id)) else None,
                        )
                        for job in d.jobs
                    ],
                )
                for d in dispatches
            ],
        )
