"""The room record and how observations (joins, leaves, room start/finish) change it.

A room is keyed by name; ``sid`` names the current LiveKit session of that room, because
LiveKit reuses names. Sessions are ordered by LiveKit's ``creation_time`` (every webhook and
room listing carries it), and the sids of recently replaced sessions are kept: an event of an
older session changes nothing, however late LiveKit retries it. Participants are keyed by sid,
never identity: a page refresh is joined(new sid) + left(old sid), in either order, and must
not look like an empty room. ``departed`` remembers sids seen leaving so a late or duplicated
``joined`` cannot bring a participant back; it is bounded by age and count, so a high-churn
room never nears DynamoDB's 400 KB item limit.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DEPARTED_MEMORY_SECONDS = 3600.0
# LiveKit drops an undelivered webhook after 30 s, so a joined arriving after its own left is
# seconds late at most; the newest 100 departed sids cover any realistic reordering.
MAX_DEPARTED = 100
# Stores record leaves without pruning on their fast path and prune past this many.
DEPARTED_PRUNE_THRESHOLD = 2 * MAX_DEPARTED
MAX_ENDED_SESSIONS = 5
# How long a record outside the attention index stays readable (``HISTORY_TTL_SECONDS``).
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
# A join reservation (see ``expect_human``) lasts at most this long, whatever the caller asks,
# and a room keeps at most this many of them.
MAX_RESERVATION_SECONDS = 300.0
# How long the join API counts a human handed a token as present before LiveKit reports the
# join: the time to open the app and connect. Rooms we create outlive it plus grace.
JOIN_RESERVATION_SECONDS = 60
MAX_EXPECTED = 20
# Job ids whose failure the room counted, newest last: enough to recognise a report and the
# sweep's sight of the same dead job (minutes apart at most) within the crash window.
MAX_FAILED_JOBS = 10


class RoomState(StrEnum):
    """Derived from the record's fields on every save; stored for the index and for people."""

    IDLE = "idle"
    STARTING = "starting"
    ACTIVE = "active"
    GRACE = "grace"
    STOPPING = "stopping"
    CLOSED = "closed"
    FAILED = "failed"


class CloseReason(StrEnum):
    """Why a room closed, or is closing: set by the write that begins the agent's removal and
    kept by the write that closes the room (``reconcile.closed``), so history says why."""

    GRACE_ENDED = "humans_left_grace_ended"
    """The humans left (or a join reservation lapsed) and the grace period ran out."""
    ROOM_FINISHED = "room_finished"
    """LiveKit closed the room (``room_finished``: its ``departure_timeout``, or a delete)."""
    SWEPT = "swept"
    """The sweep found LiveKit no longer has the session (its ``room_finished`` was lost)."""
    FORCE_CLOSED = "force_closed"
    """An operator closed it (``POST /rooms/{room}/close``)."""
    FAILED = "failed"
    """Its agent crash-looped and the humans left while it was ``failed``."""
    AGENT_TASK_STOPPED = "agent_task_stopped"
    """The agent's task stopped unasked while no human was there."""
    AGENT_MAX_AGE = "agent_max_age"
    """The sweep retired its agent past ``MAX_AGENT_AGE_SECONDS`` while no human was there."""
    HUMANS_LEFT = "humans_left"
    """The humans left before an agent was started (a launch backing off)."""


NEEDS_ATTENTION = frozenset(
    {RoomState.STARTING, RoomState.ACTIVE, RoomState.GRACE, RoomState.STOPPING, RoomState.FAILED}
)


class Human(BaseModel):
    model_config = ConfigDict(frozen=True)

    identity: str
    joined_at: float


class Agent(BaseModel):
    """Our agent for the current session: one launch token, at most one task and dispatch.

    ``task_arn`` is the task the agent is on: with ``slot_reserved``, the worker holding the
    room's slot (LiveKit's choice once the job started, ``job_id``); without, a task launched
    for the room that is not ready yet (the room takes any slot that opens first, that task's
    or another's). ``launch_queued`` marks a launch the limiter or ``MAX_TASKS`` held back: no
    RunTask was sent for the token, so a retry need not look for its task.

    ``*_claimed_at`` mark a side effect a reconciler has won the right to perform; a claim
    older than the lease with no recorded result is taken over (its owner crashed).
    ``task_stopped_at`` records that ECS reported the task gone without our asking: the
    agent is then removed like any unwanted one, and a new launch follows if still wanted.
    ``wanted_at`` is when the room first asked for this agent (for ``JoinToDispatchSeconds``).
    """

    model_config = ConfigDict(frozen=True)

    launch_token: str
    launch_claimed_at: float
    room_sid: str | None = None
    task_arn: str | None = None
    slot_reserved: bool = False
    slot_claimed_at: float | None = None
    launch_queued: bool = False
    wanted_at: float | None = None
    job_id: str | None = None
    dispatch_id: str | None = None
    dispatch_claimed_at: float | None = None
    dispatched_at: float | None = None
    task_stopped_at: float | None = None


class Grace(BaseModel):
    model_config = ConfigDict(frozen=True)

    generation: int
    deadline: float


class Room(BaseModel):
    """``crashes`` holds when the agent's task died unasked or one of its jobs failed soon after
    it started, within the crash window; ``next_launch_at`` holds the next launch or dispatch
    back until a backoff is over; ``failed_at`` is set once they reach the crash-loop limit and
    stops all launches and dispatches until a new human joins (or an operator resets the room).
    ``failed_jobs`` holds the LiveKit job ids already counted (the newest :data:`MAX_FAILED_JOBS`),
    so a job's failure counts once whoever sees it: its worker's report, or a sweep that finds
    it dead in LiveKit, or both, in any order and in any number of Lambdas.
    ``expected`` maps the identities handed a join token to when that reservation lapses
    (:func:`expect_human`).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    sid: str | None = None
    session_created_at: float = 0.0
    ended_sessions: tuple[str, ...] = ()
    version: int = 0
    humans: dict[str, Human] = Field(default_factory=dict)
    departed: dict[str, float] = Field(default_factory=dict)
    expected: dict[str, float] = Field(default_factory=dict)
    agent: Agent | None = None
    grace: Grace | None = None
    generation: int = 0
    launches: int = 0
    launch_failures: int = 0
    next_launch_at: float | None = None
    crashes: tuple[float, ...] = ()
    failed_jobs: tuple[str, ...] = ()
    failed_at: float | None = None
    stop_requested_at: float | None = None
    finished: bool = False
    closed_at: float | None = None
    closed_reason: CloseReason | None = None
    expires_at: int | None = None
    departure_timeout: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # Whether the stored item carries the sparse index attribute: read back, never written as
    # a field (stores derive it from ``needs_attention`` on every full write).
    in_attention_index: bool = Field(default=False, exclude=True)

    @property
    def state(self) -> RoomState:
        if self.stop_requested_at is not None:
            return RoomState.STOPPING
        if self.failed_at is not None:
            return RoomState.FAILED
        if self.humans and not self.finished:
            if self.agent is None:
                return RoomState.IDLE
            return RoomState.ACTIVE if self.agent.dispatch_id else RoomState.STARTING
        if self.grace is not None:
            return RoomState.GRACE
        if self.closed_at is not None:
            return RoomState.CLOSED
        return RoomState.IDLE

    @property
    def wants_agent(self) -> bool:
        """Humans are in the current session, so an agent should be there too."""
        return bool(self.humans) and not self.finished

    @property
    def needs_attention(self) -> bool:
        """In the sweeper's index: anything not settled, including humans still waiting for
        an agent (a launch backing off), so a lost timer message cannot strand them."""
        return self.state in NEEDS_ATTENTION or self.agent is not None or self.wants_agent


class SessionOrder(StrEnum):
    CURRENT = "current"
    NEWER = "newer"
    STALE = "stale"


def session_order(room: Room | None, sid: str, created_at: float) -> SessionOrder:
    """Where session ``sid`` (created at ``created_at``, 0 if unknown) stands against the
    room's current one. A sid replaced earlier is stale for good; otherwise LiveKit's creation
    times decide, and a different sid with no usable time is taken as the newer session."""
    if room is None or room.sid is None:
        return SessionOrder.NEWER
    if sid == room.sid:
        return SessionOrder.CURRENT
    if sid in room.ended_sessions:
        return SessionOrder.STALE
    if created_at > 0 and room.session_created_at > 0 and created_at < room.session_created_at:
        return SessionOrder.STALE
    return SessionOrder.NEWER


def with_retention(room: Room, ttl_seconds: int) -> Room:
    """A record in the attention index never expires; one outside it always does, so rooms
    that never close (a room_started nobody joined, a lost room_finished) cannot pile up."""
    if room.needs_attention:
        return room if room.expires_at is None else room.model_copy(update={"expires_at": None})
    if room.expires_at is not None:
        return room
    return room.model_copy(update={"expires_at": int(room.updated_at) + ttl_seconds})


class ChangeKind(StrEnum):
    JOINED = "joined"
    LEFT = "left"


class ParticipantChange(BaseModel):
    """A human joining or leaving, already filtered by :func:`control_plane.humans.is_human`."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    room: str
    room_sid: str
    sid: str
    identity: str
    at: float
    room_created_at: float = 0.0


def new_room(name: str, sid: str | None, created_at: float, now: float) -> Room:
    return Room(name=name, sid=sid, session_created_at=created_at, created_at=now, updated_at=now)


def start_session(room: Room, sid: str, created_at: float, now: float) -> Room:
    """A newer LiveKit session under a reused name: forget people, keep version and history.

    The previous session's agent is kept (its ``room_sid`` tells it apart) so reconcile can
    stop it; LiveKit already removed its dispatch together with the old room. The old sid is
    remembered so its late events are recognised as stale.
    """
    ended = room.ended_sessions if room.sid is None else (*room.ended_sessions, room.sid)
    return room.model_copy(
        update={
            "sid": sid,
            "session_created_at": created_at,
            "ended_sessions": ended[-MAX_ENDED_SESSIONS:],
            "humans": {},
            "departed": {},
            "expected": {},
            "grace": None,
            "finished": False,
            "closed_at": None,
            "closed_reason": None,
            "expires_at": None,
            "departure_timeout": None,
            "updated_at": now,
        }
    )


def _in_session(room: Room | None, name: str, sid: str, created_at: float, now: float) -> Room | None:
    """The room moved to session ``sid`` if that session is current or newer; None if stale."""
    order = session_order(room, sid, created_at)
    if room is None:
        return new_room(name, sid, created_at, now)
    if order is SessionOrder.STALE:
        return None
    if order is SessionOrder.NEWER:
        return start_session(room, sid, created_at, now)
    if room.session_created_at == 0 and created_at > 0:
        return room.model_copy(update={"session_created_at": created_at})
    return room


def prune_departed(departed: dict[str, float], now: float) -> dict[str, float]:
    recent = sorted(
        ((at, sid) for sid, at in departed.items() if now - at < DEPARTED_MEMORY_SECONDS), reverse=True
    )
    return {sid: at for at, sid in recent[:MAX_DEPARTED]}


def observe_participant(room: Room | None, change: ParticipantChange) -> Room | None:
    """Apply a join or leave; None if it belongs to an earlier session (nothing to record).

    Idempotent, and order-tolerant per sid (leave wins). A new human joining a failed room is
    the signal to try again: the failure and its crash history are cleared here, where the
    join is recorded once, not in the level-triggered ``decide`` that cannot tell a new join
    from an old one.
    """
    in_session = _in_session(room, change.room, change.room_sid, change.room_created_at, change.at)
    if in_session is None:
        return None
    room = in_session
    humans = dict(room.humans)
    departed = prune_departed(room.departed, change.at)
    if change.kind is ChangeKind.JOINED:
        if change.sid in departed or change.sid in humans:
            return room
        humans[change.sid] = Human(identity=change.identity, joined_at=change.at)
        if room.failed_at is not None:
            room = room.model_copy(update={"failed_at": None, "crashes": (), "next_launch_at": None})
    else:
        humans.pop(change.sid, None)
        departed[change.sid] = change.at
    return room.model_copy(update={"humans": humans, "departed": departed, "updated_at": change.at})


def observe_room_started(
    room: Room | None, name: str, sid: str, created_at: float, departure_timeout: int, now: float
) -> Room | None:
    """LiveKit (a webhook or its room list) shows session ``sid``; None if it is stale."""
    in_session = _in_session(room, name, sid, created_at, now)
    if in_session is None:
        return None
    if in_session.departure_timeout == departure_timeout and in_session is room:
        return room
    return in_session.model_copy(update={"departure_timeout": departure_timeout, "updated_at": now})


def observe_room_finished(
    room: Room | None,
    name: str,
    sid: str,
    created_at: float,
    now: float,
    reason: CloseReason = CloseReason.ROOM_FINISHED,
) -> Room | None:
    """LiveKit closed session ``sid``: nobody is left and the agent must go now, without grace.

    A newer session that already finished ends the current one too (its webhooks were lost);
    a finished earlier session, or a room never recorded, changes nothing (None). ``reason``
    says who saw it end (a room already closing keeps its own).
    """
    if room is None:
        return None
    in_session = _in_session(room, name, sid, created_at, now)
    if in_session is None:
        return None
    if in_session.finished and not in_session.humans and not in_session.expected and in_session.grace is None:
        return in_session
    return in_session.model_copy(
        update={
            "humans": {},
            "expected": {},
            "finished": True,
            "grace": None,
            "closed_reason": in_session.closed_reason or reason,
            "updated_at": now,
        }
    )


def live_reservations(room: Room, now: float) -> dict[str, float]:
    """The join reservations of ``room`` that have not lapsed at ``now``."""
    return {identity: until for identity, until in room.expected.items() if until > now}


def expect_human(room: Room, identity: str, until: float, now: float) -> Room:
    """Record that ``identity`` was handed a join token and is expected until ``until``.

    Why: the join API asks for the agent when it issues the token, before LiveKit has even seen
    the human, so a cold start overlaps the human's connect. ``reconcile.decide`` counts a live
    reservation as presence for launching, dispatching and keeping the agent, so the core's rule
    reads "no agent for a room without humans beyond its last reservation plus grace": once a
    reservation lapses with nobody in the room, the ordinary grace period runs out from its end.
    A reservation is capped at :data:`MAX_RESERVATION_SECONDS` whatever the caller asks, so the
    rule stays bounded. The join webhook does not consume it (its DynamoDB fast path writes only
    the human); it simply lapses. Lapsed ones are dropped here and the newest
    :data:`MAX_EXPECTED` kept, so the item stays small. A session's reservations end with it.
    """
    until = min(until, now + MAX_RESERVATION_SECONDS)
    kept = live_reservations(room, now)
    kept[identity] = max(until, kept.get(identity, until))
    newest = dict(sorted(kept.items(), key=lambda item: item[1])[-MAX_EXPECTED:])
    if newest == room.expected:
        return room
    return room.model_copy(update={"expected": newest, "updated_at": now})


def clear_failure(room: Room) -> Room:
    """An operator's reset: forget the crash loop and any launch backoff, so the next
    reconcile launches for the humans there (or the next one to join). Unchanged if not failed."""
    if (
        room.failed_at is None
        and not room.crashes
        and room.next_launch_at is None
        and room.launch_failures == 0
    ):
        return room
    return room.model_copy(
        update={"failed_at": None, "crashes": (), "next_launch_at": None, "launch_failures": 0}
    )
