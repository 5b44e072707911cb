"""The room record as the API shows it: pure functions from core records to response models."""

from __future__ import annotations

from collections.abc import Iterable

from api import models
from control_plane.ports import TaskSnapshot
from control_plane.room import Room, RoomState, live_reservations
from control_plane.worker_protocol import WorkerRecord

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


def room_detail(
    room: Room, now: float, worker: WorkerRecord | None = None, task: TaskSnapshot | None = None
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
        grace=models.Grace(deadline=room.grace.deadline, generation=room.grace.generation)
        if room.grace
        else None,
        crashes=list(room.crashes),
        failed_at=room.failed_at,
        next_launch_at=room.next_launch_at,
        departure_timeout=room.departure_timeout,
        created_at=room.created_at,
        updated_at=room.updated_at,
        closed_at=room.closed_at,
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
