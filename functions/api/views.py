"""The room record as the API shows it: pure functions from core records to response models."""

from __future__ import annotations

from collections.abc import Iterable

from api import models
from control_plane.ports import TaskSnapshot
from control_plane.room import CloseReason, Room, RoomState, live_reservations
from control_plane.worker_protocol import WorkerRecord

# ``closed_reason`` for people (``lkctl room show``, the local stack's page).
CLOSE_REASONS: dict[CloseReason, str] = {
    CloseReason.GRACE_ENDED: "the humans left and the grace period ran out",
    CloseReason.ROOM_FINISHED: "LiveKit closed the room (room_finished)",
    CloseReason.SWEPT: "the sweep found the room gone from LiveKit (its room_finished was lost)",
    CloseReason.FORCE_CLOSED: "closed by an operator",
    CloseReason.FAILED: "the humans left while the room was failed (agent crash loop)",
    CloseReason.AGENT_TASK_STOPPED: "the agent's task stopped while no human was there",
    CloseReason.AGENT_MAX_AGE: "the agent passed MAX_AGENT_AGE_SECONDS while no human was there",
    CloseReason.HUMANS_LEFT: "the humans left before an agent was started",
}

# The sweeper's ActiveAgents: an agent that is, or is about to be, in its room.
ACTIVE_AGENT_STATES = frozenset({RoomState.STARTING, RoomState.ACTIVE, RoomState.GRACE})


def agent_status(room: Room) -> models.AgentStatus:
    agent = room.agent
    if agent is None:
        return models.AgentStatus.NONE
    if room.stop_requested_at is not None:
        return models.AgentStatus.STOPPING
    if agent.dispatch_id is not None:
        return models.AgentStatus.DISPATCHED
    if agent.task_arn is not None:
        return models.AgentStatus.WAITING_FOR_WORKER
    return models.AgentStatus.LAUNCHING


def agent_view(room: Room) -> models.AgentView:
    agent = room.agent
    return models.AgentView(
        status=agent_status(room),
        task_arn=agent.task_arn if agent else None,
        dispatch_id=agent.dispatch_id if agent else None,
        dispatched_at=agent.dispatched_at if agent else None,
    )


def room_summary(room: Room) -> models.RoomSummary:
    return models.RoomSummary(
        name=room.name,
        state=room.state,
        humans=len(room.humans),
        agent=agent_status(room),
        grace_deadline=room.grace.deadline if room.grace else None,
        updated_at=room.updated_at,
    )


def grace_view(room: Room, grace_seconds: int) -> models.Grace | None:
    """The grace deadline and why it is there: ``grace_seconds`` after the last human left, or
    after the end of a join reservation that ran later (``reconcile._grace_deadline``); and when
    LiveKit closes the room first, ``departure_timeout`` after the last departure it counts."""
    if room.grace is None:
        return None
    deadline = room.grace.deadline
    runs_from = deadline - grace_seconds
    holders = sorted(identity for identity, until in room.expected.items() if abs(until - runs_from) < 1)
    last_left = max(room.departed.values(), default=None)
    if holders:
        why = f"grace {grace_seconds} s from the end of the join reservation of {', '.join(holders)}"
        if last_left is not None and runs_from > last_left:
            why += f" ({runs_from - last_left:.0f} s after the last human left)"
    else:
        why = f"grace {grace_seconds} s from the last human leaving"
    closes_at = None
    if last_left is not None and room.departure_timeout is not None:
        closes_at = last_left + room.departure_timeout
        if closes_at < deadline:
            early = deadline - closes_at
            why += (
                f"; LiveKit closes the room {early:.0f} s sooner, its departure_timeout "
                f"({room.departure_timeout} s) after the last human left"
            )
        else:
            closes_at = None
    return models.Grace(
        deadline=deadline, generation=room.grace.generation, why=why, livekit_closes_at=closes_at
    )


def room_detail(
    room: Room,
    now: float,
    grace_seconds: int,
    worker: WorkerRecord | None = None,
    task: TaskSnapshot | None = None,
) -> models.RoomDetail:
    agent = room.agent
    detail = None
    if agent is not None:
        detail = models.AgentDetail(
            **agent_view(room).model_dump(),
            launch_token=agent.launch_token,
            task_started_at=task.started_at if task else None,
            heartbeat_age_seconds=round(now - worker.heartbeat_at, 3) if worker else None,
            worker_status=worker.status.value if worker else None,
        )
    return models.RoomDetail(
        name=room.name,
        sid=room.sid,
        state=room.state,
        humans=[
            models.Human(sid=sid, identity=human.identity, joined_at=human.joined_at)
            for sid, human in sorted(room.humans.items(), key=lambda item: item[1].joined_at)
        ],
        expected=[
            models.ExpectedHuman(identity=identity, until=until)
            for identity, until in sorted(live_reservations(room, now).items())
        ],
        agent=detail,
        grace=grace_view(room, grace_seconds),
        crashes=list(room.crashes),
        failed_at=room.failed_at,
        next_launch_at=room.next_launch_at,
        departure_timeout=room.departure_timeout,
        created_at=room.created_at,
        updated_at=room.updated_at,
        closed_at=room.closed_at,
        closed_reason=room.closed_reason,
        expires_at=room.expires_at,
        version=room.version,
    )


def rooms_by_state(rooms: Iterable[Room]) -> dict[str, int]:
    counts = dict.fromkeys((state.value for state in RoomState), 0)
    for room in rooms:
        counts[room.state.value] += 1
    return counts


def active_agents(rooms: Iterable[Room]) -> int:
    return sum(1 for room in rooms if room.agent is not None and room.state in ACTIVE_AGENT_STATES)


def warm_slots(workers: Iterable[WorkerRecord], rooms: Iterable[Room], now: float, stale_after: float) -> int:
    """Free slots on ready workers whose task no room's agent is using."""
    claimed = {room.agent.task_arn for room in rooms if room.agent is not None and room.agent.task_arn}
    return sum(
        max(worker.capacity - len(worker.jobs), 0)
        for worker in workers
        if worker.task_arn not in claimed and worker.is_ready(now, stale_after)
    )


def oldest_age(tasks: Iterable[TaskSnapshot], now: float) -> float | None:
    """The oldest task's age; ``None`` when no task runs (not a misleading 0 s)."""
    oldest = max((age for task in tasks if (age := task.age(now)) is not None), default=None)
    return None if oldest is None else round(oldest, 3)
