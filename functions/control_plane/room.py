"""The room record and how observations (joins, leaves, room start/finish) change it.

A room is keyed by name; ``sid`` names the current LiveKit session of that room, because
LiveKit reuses names. Participants are keyed by sid, never identity: a page refresh is
joined(new sid) + left(old sid), in either order, and must not look like an empty room.
``departed`` remembers sids seen leaving so a late or duplicated ``joined`` cannot bring a
participant back.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DEPARTED_MEMORY_SECONDS = 3600.0


class RoomState(StrEnum):
    """Derived from the record's fields on every save; stored for the index and for people."""

    IDLE = "idle"
    STARTING = "starting"
    ACTIVE = "active"
    GRACE = "grace"
    STOPPING = "stopping"
    CLOSED = "closed"
    FAILED = "failed"


NEEDS_ATTENTION = frozenset(
    {RoomState.STARTING, RoomState.ACTIVE, RoomState.GRACE, RoomState.STOPPING, RoomState.FAILED}
)


class Human(BaseModel):
    model_config = ConfigDict(frozen=True)

    identity: str
    joined_at: float


class Agent(BaseModel):
    """Our agent for the current session: one launch token, at most one task and dispatch.

    ``*_claimed_at`` mark a side effect a reconciler has won the right to perform; a claim
    older than the lease with no recorded result is taken over (its owner crashed).
    ``task_stopped_at`` records that ECS reported the task gone without our asking: the
    agent is then removed like any unwanted one, and a new launch follows if still wanted.
    """

    model_config = ConfigDict(frozen=True)

    launch_token: str
    launch_claimed_at: float
    room_sid: str | None = None
    task_arn: str | None = None
    dispatch_id: str | None = None
    dispatch_claimed_at: float | None = None
    dispatched_at: float | None = None
    task_stopped_at: float | None = None


class Grace(BaseModel):
    model_config = ConfigDict(frozen=True)

    generation: int
    deadline: float


class Room(BaseModel):
    """``crashes`` holds when the agent's task died unasked, within the crash window;
    ``failed_at`` is set once they reach the crash-loop limit and stops all launches until a
    new human joins (or an operator resets the room).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    sid: str | None = None
    version: int = 0
    humans: dict[str, Human] = Field(default_factory=dict)
    departed: dict[str, float] = Field(default_factory=dict)
    agent: Agent | None = None
    grace: Grace | None = None
    generation: int = 0
    launches: int = 0
    launch_failures: int = 0
    next_launch_at: float | None = None
    crashes: tuple[float, ...] = ()
    failed_at: float | None = None
    stop_requested_at: float | None = None
    finished: bool = False
    closed_at: float | None = None
    expires_at: int | None = None
    departure_timeout: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

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


def new_room(name: str, sid: str | None, now: float) -> Room:
    return Room(name=name, sid=sid, created_at=now, updated_at=now)


def start_session(room: Room, sid: str, now: float) -> Room:
    """A new LiveKit session under a reused name: forget people, keep version and history.

    The previous session's agent is kept (its ``room_sid`` tells it apart) so reconcile can
    stop it; LiveKit already removed its dispatch together with the old room.
    """
    return room.model_copy(
        update={
            "sid": sid,
            "humans": {},
            "departed": {},
            "grace": None,
            "finished": False,
            "closed_at": None,
            "expires_at": None,
            "departure_timeout": None,
            "updated_at": now,
        }
    )


def observe_participant(room: Room | None, change: ParticipantChange) -> Room:
    """Apply a join or leave. Idempotent, and order-tolerant per sid (leave wins).

    A new human joining a failed room is the signal to try again: the failure and its crash
    history are cleared here, where the join is recorded once, not in the level-triggered
    ``decide`` that cannot tell a new join from an old one.
    """
    if room is None:
        room = new_room(change.room, change.room_sid, change.at)
    elif room.sid != change.room_sid:
        room = start_session(room, change.room_sid, change.at)
    humans = dict(room.humans)
    departed = {sid: at for sid, at in room.departed.items() if change.at - at < DEPARTED_MEMORY_SECONDS}
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


def observe_room_started(room: Room | None, name: str, sid: str, departure_timeout: int, now: float) -> Room:
    if room is None:
        room = new_room(name, sid, now)
    elif room.sid != sid:
        room = start_session(room, sid, now)
    return room.model_copy(update={"departure_timeout": departure_timeout, "updated_at": now})


def observe_room_finished(room: Room | None, name: str, sid: str, now: float) -> Room | None:
    """LiveKit closed the room: nobody is left and the agent must go now, without grace."""
    if room is None or (room.sid is not None and room.sid != sid):
        return room
    return room.model_copy(update={"humans": {}, "finished": True, "grace": None, "updated_at": now})
