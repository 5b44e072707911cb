"""The JSON of the simulator's own HTTP API (control endpoint, worker API, state), one pydantic
model per shape, shared by the server, the Python client and ``lkctl sim``.

Requests refuse unknown fields, as the stack's API does, so a typo is an error and not a default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_KIND_NUMBERS = {"standard": 0, "ingress": 1, "egress": 2, "sip": 3, "agent": 4, "connector": 7, "bridge": 8}


class ParticipantKind(StrEnum):
    """LiveKit's ``ParticipantInfo.Kind`` by name."""

    STANDARD = "standard"
    INGRESS = "ingress"
    EGRESS = "egress"
    SIP = "sip"
    AGENT = "agent"
    CONNECTOR = "connector"
    BRIDGE = "bridge"

    @property
    def number(self) -> int:
        return _KIND_NUMBERS[self.value]

    @property
    def is_dependent(self) -> bool:
        """LiveKit's IsDependent: agents and egress never keep a room open."""
        return self in (ParticipantKind.AGENT, ParticipantKind.EGRESS)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- control endpoint ---------------------------------------------------------------------------


class JoinRequest(_Request):
    identity: str = Field(min_length=1, max_length=256)
    kind: ParticipantKind = ParticipantKind.STANDARD
    name: str = ""
    metadata: str = ""


class LeaveRequest(_Request):
    """Exactly one of ``sid`` (one connection) or ``identity`` (every connection of it)."""

    sid: str | None = Field(default=None, min_length=1)
    identity: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> LeaveRequest:
        if (self.sid is None) == (self.identity is None):
            raise ValueError("give exactly one of sid or identity")
        return self


class RefreshRequest(_Request):
    identity: str = Field(min_length=1, max_length=256)


class Participant(BaseModel):
    sid: str
    identity: str
    kind: ParticipantKind
    joined_at: float
    name: str = ""
    metadata: str = ""


class JoinResult(BaseModel):
    room: str
    room_sid: str
    participant: Participant


class LeaveResult(BaseModel):
    room: str
    left: list[Participant]


class RefreshResult(BaseModel):
    """A page refresh: the new connection joined first, then the old one(s) left."""

    room: str
    joined: Participant
    left: list[Participant]


class WebhookFaults(_Request):
    """Faults drawn for each webhook as it is queued; ``seed`` makes a run repeatable."""

    duplicate: float = Field(default=0.0, ge=0.0, le=1.0, description="chance an event is sent twice")
    reorder: float = Field(
        default=0.0, ge=0.0, le=1.0, description="chance an event is held back behind later ones"
    )
    reorder_window: int = Field(default=2, ge=1, le=50, description="later events a held one lets pass")
    loss: float = Field(default=0.0, ge=0.0, le=1.0, description="chance an event is never sent")
    seed: int | None = None


class FieldError(BaseModel):
    field: str
    reason: str


class ApiError(BaseModel):
    error: str
    fields: list[FieldError] = []


# --- state ----------------------------------------------------------------------------------------


class JobInfo(BaseModel):
    job_id: str
    status: str
    worker_id: str | None = None


class DispatchInfo(BaseModel):
    dispatch_id: str
    agent_name: str
    metadata: str
    created_at: float
    jobs: list[JobInfo]


class RoomInfo(BaseModel):
    name: str
    sid: str
    created_at: float
    departure_timeout: int
    empty_timeout: int
    closes_at: float | None = Field(description="when LiveKit closes it if nobody joins; none while in use")
    participants: list[Participant]
    dispatches: list[DispatchInfo]


class WorkerInfo(BaseModel):
    worker_id: str
    agent_name: str
    slots: int
    jobs: list[str]


class WebhookStats(BaseModel):
    url: str | None
    queued: int = 0
    delivered: int = 0
    rejected: int = Field(default=0, description="answered with a 4xx: not retried")
    dropped: int = Field(default=0, description="too old before sending, or failed every retry")
    lost: int = Field(default=0, description="lost on purpose (fault injection)")
    duplicated: int = 0
    faults: WebhookFaults = WebhookFaults()


class SimState(BaseModel):
    now: float
    rooms: list[RoomInfo]
    workers: list[WorkerInfo]
    webhooks: WebhookStats


# --- worker API -----------------------------------------------------------------------------------


class RegisterWorker(_Request):
    agent_name: str = Field(description='"" takes the jobs of rooms\' default dispatch, as in LiveKit')
    slots: int = Field(default=1, ge=1, le=1000)
    task_arn: str | None = Field(
        default=None,
        description="The task the worker runs in: it accepts each job as agent_identity(job, task), "
        "as the real worker answers LiveKit's job offer; without one, LiveKit's default agent-<job id>",
    )


class Registered(BaseModel):
    worker_id: str


class JobAssignment(BaseModel):
    """The worker got a job: its agent is already in the room as ``participant_identity``."""

    type: Literal["assignment"] = "assignment"
    job_id: str
    dispatch_id: str
    room: str
    room_sid: str
    agent_name: str
    metadata: str
    participant_sid: str | None
    participant_identity: str | None


class JobTermination(BaseModel):
    """The job ended without the worker asking: dispatch deleted, room closed, agent removed."""

    type: Literal["termination"] = "termination"
    job_id: str
    room: str
    reason: str


WorkerMessage = Annotated[JobAssignment | JobTermination, Field(discriminator="type")]


class WorkerMessages(BaseModel):
    messages: list[WorkerMessage]


class EndJob(_Request):
    status: Literal["success", "failed"] = "success"


class JobEnded(BaseModel):
    job_id: str
    status: str


class Unregistered(BaseModel):
    worker_id: str
    jobs_ended: list[str]
