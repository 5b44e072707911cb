"""Request and response models of the HTTP API, and the input rules they enforce.

LiveKit's own limits (livekit/livekit ``pkg/config/config.go`` ``LimitConfig``, compared with
Go's ``len``, so in UTF-8 bytes): room name and participant identity 1-256 bytes, display name
256 bytes, metadata 512 KiB, attributes 64 KiB for all keys and values together. Two rules of
ours on top, because names travel where LiveKit's do not: a room name is one URL path segment
(no ``/``: API Gateway would split it), and no name or identity may hold control characters
(they cannot be shown, logged or typed back). The CLI prints these same models with ``--json``.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Annotated
from urllib.parse import unquote

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from control_plane.room import CloseReason, RoomState

LIVEKIT_MAX_NAME_BYTES = 256
LIVEKIT_MAX_METADATA_BYTES = 512 * 1024
LIVEKIT_MAX_ATTRIBUTES_BYTES = 64 * 1024
TOKEN_TTL_DEFAULT_SECONDS = 600
TOKEN_TTL_MIN_SECONDS = 60
TOKEN_TTL_MAX_SECONDS = 3600
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


def _utf8_bytes(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _printable(value: str) -> str:
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("must not contain control characters")
    return value


def _name_sized(value: str) -> str:
    if _utf8_bytes(value) > LIVEKIT_MAX_NAME_BYTES:
        raise ValueError(f"must be at most {LIVEKIT_MAX_NAME_BYTES} UTF-8 bytes (LiveKit's limit)")
    return value


def _room_name(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if "/" in value:
        raise ValueError("must not contain '/' (a room name is one URL path segment)")
    return _name_sized(_printable(value))


def _metadata_sized(value: str) -> str:
    if _utf8_bytes(value) > LIVEKIT_MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {LIVEKIT_MAX_METADATA_BYTES} UTF-8 bytes (LiveKit's limit)")
    return value


def _attributes_sized(value: dict[str, str]) -> dict[str, str]:
    total = sum(_utf8_bytes(key) + _utf8_bytes(item) for key, item in value.items())
    if total > LIVEKIT_MAX_ATTRIBUTES_BYTES:
        raise ValueError(
            f"keys and values together must be at most {LIVEKIT_MAX_ATTRIBUTES_BYTES} UTF-8 bytes"
            " (LiveKit's limit)"
        )
    return value


def _display_name(value: str | None) -> str | None:
    return None if value is None else _name_sized(_printable(value))


def _metadata(value: str | None) -> str | None:
    return None if value is None else _metadata_sized(value)


def _path_segment(value: object) -> object:
    """API Gateway hands the path over percent-encoded; invalid UTF-8 is refused, not replaced."""
    return unquote(value, errors="strict") if isinstance(value, str) else value


ROOM_NAME_RULE = "LiveKit room name, percent-encoded in the path: 1-256 UTF-8 bytes, no '/'"
RoomName = Annotated[str, BeforeValidator(_path_segment), AfterValidator(_room_name)]
"""A room name from a URL path (routes add ``Path(description=ROOM_NAME_RULE)``)."""
Identity = Annotated[
    str,
    Field(min_length=1, description="LiveKit participant identity: 1-256 UTF-8 bytes"),
    AfterValidator(_printable),
    AfterValidator(_name_sized),
]


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class JoinRequest(ApiModel):
    """What an app backend sends for a human about to join; unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity: Identity
    name: Annotated[str | None, AfterValidator(_display_name)] = Field(
        None, description="Display name shown to others: at most 256 UTF-8 bytes"
    )
    metadata: Annotated[str | None, AfterValidator(_metadata)] = Field(
        None, description="Participant metadata, often JSON: at most 512 KiB"
    )
    attributes: Annotated[dict[str, str], AfterValidator(_attributes_sized)] = Field(
        default_factory=dict, description="Participant attributes: at most 64 KiB in all"
    )
    ttl_seconds: int = Field(
        TOKEN_TTL_DEFAULT_SECONDS,
        ge=TOKEN_TTL_MIN_SECONDS,
        le=TOKEN_TTL_MAX_SECONDS,
        description="How long the token may be used to connect (LiveKit keeps a connected participant)",
    )


class AgentStatus(StrEnum):
    """Where the room's agent is: none, a task launching, a task waiting for its worker to be
    ready, dispatched into the room, or being removed."""

    NONE = "none"
    LAUNCHING = "launching"
    WAITING_FOR_WORKER = "waiting_for_worker"
    DISPATCHED = "dispatched"
    STOPPING = "stopping"


class AgentView(ApiModel):
    status: AgentStatus
    task_arn: str | None = None
    dispatch_id: str | None = None
    dispatched_at: float | None = None


class JoinResponse(ApiModel):
    room: str
    room_sid: str | None
    identity: str
    url: str = Field(description="LiveKit URL the client connects to with the token")
    token: str = Field(description="Participant token: joins this room only")
    token_expires_at: int = Field(description="Epoch seconds after which the token no longer connects")
    agent: AgentView
    reused: bool = Field(description="The room already had this agent before the call")


class Human(ApiModel):
    sid: str
    identity: str
    joined_at: float


class ExpectedHuman(ApiModel):
    identity: str
    until: float = Field(description="Epoch seconds when the join reservation lapses")


class AgentDetail(AgentView):
    launch_token: str
    task_started_at: float | None = Field(None, description="When ECS started the task, if it says")
    heartbeat_age_seconds: float | None = Field(None, description="Age of the worker's last heartbeat")
    worker_status: str | None = None


class Grace(ApiModel):
    deadline: float
    generation: int
    why: str = Field(description="Why the deadline is where it is, and whether LiveKit closes the room first")
    livekit_closes_at: float | None = Field(
        None, description="When LiveKit's departure_timeout closes the room, if before the deadline"
    )


class RoomDetail(ApiModel):
    name: str
    sid: str | None
    state: RoomState
    humans: list[Human]
    expected: list[ExpectedHuman]
    agent: AgentDetail | None
    grace: Grace | None
    crashes: list[float] = Field(description="When the agent's task died unasked, within the crash window")
    failed_at: float | None
    next_launch_at: float | None
    departure_timeout: int | None
    created_at: float
    updated_at: float
    closed_at: float | None
    closed_reason: CloseReason | None = Field(
        description="Why the room closed, or is closing (set with closed_at, or when the stop begins)"
    )
    expires_at: int | None = Field(description="When DynamoDB may delete the record (epoch seconds)")
    version: int


class RoomSummary(ApiModel):
    name: str
    state: RoomState
    humans: int
    agent: AgentStatus
    grace_deadline: float | None
    updated_at: float


class RoomPage(ApiModel):
    """Rooms that are not settled (the attention index: no table scan), in name order. A page
    may hold fewer than ``limit`` when filtered; follow ``next_cursor`` until it is null."""

    rooms: list[RoomSummary]
    next_cursor: str | None


class LastHour(ApiModel):
    agent_starts: int
    agent_stops: int
    grace_cancels: int
    crashes: int


class Stats(ApiModel):
    at: float
    rooms_by_state: dict[str, int] = Field(description="Rooms in the attention index by state")
    active_agents: int = Field(description="Agents starting, active or in grace")
    warm_slots: int = Field(description="Free job slots on ready workers no room is using")
    oldest_agent_age_seconds: float | None = Field(
        description="Age of the oldest running agent task; null if none runs or ECS is unreadable"
    )
    last_hour: LastHour | None = Field(
        description="From CloudWatch metrics; null if it is unreadable or holds none (the local stack)"
    )


class CloseRequest(ApiModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    delete_room: bool = Field(
        False, description="Also delete the LiveKit room, disconnecting everyone and ending the session"
    )


class CloseResult(ApiModel):
    room: str
    state: RoomState
    agent_removed: bool = Field(description="This call removed an agent")
    room_deleted: bool = Field(description="This call deleted the LiveKit room")
    relaunched: bool = Field(description="Humans are still there, so a fresh agent was asked for")


class ResetResult(ApiModel):
    room: str
    state: RoomState
    was_failed: bool
    agent: AgentStatus


class SweepSummary(ApiModel):
    rooms_total: int
    rooms_visited: int
    complete: bool = Field(description="False if the sweep ran out of time; the next one resumes")
    next_cursor: str | None
    duration_seconds: float
    counts: dict[str, float] = Field(description="What the sweep did, by metric name")


class FieldError(ApiModel):
    field: str = Field(description="Where: path.room, body.identity, query.limit, ...")
    reason: str


class ErrorBody(ApiModel):
    error: str
    fields: list[FieldError] = Field(default_factory=list)
