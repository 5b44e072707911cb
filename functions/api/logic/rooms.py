"""``GET /rooms``, ``GET /rooms/{room}``, ``POST /rooms/{room}/close`` and ``/reset``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from api import views
from api.backoff import with_livekit_retries
from api.errors import RoomNotFound
from api.models import CloseRequest, CloseResult, ResetResult, RoomDetail, RoomPage
from api.wiring import ApiDeps
from control_plane.ports import RunnerUnavailable, TaskSnapshot
from control_plane.room import CloseReason, Room, RoomState

log = logging.getLogger(__name__)


def _tracked(deps: ApiDeps, name: str) -> Room:
    room = deps.ports.rooms.get(name)
    if room is None:
        raise RoomNotFound(name)
    return room


def list_rooms(deps: ApiDeps, state: RoomState | None, limit: int, cursor: str | None) -> RoomPage:
    page = deps.index.page(limit, cursor)
    return RoomPage(
        rooms=[views.room_summary(room) for room in page.rooms if state is None or room.state is state],
        next_cursor=page.next_cursor,
    )


def show_room(deps: ApiDeps, name: str) -> RoomDetail:
    room = _tracked(deps, name)
    worker = task = None
    if room.agent is not None and room.agent.task_arn is not None:
        worker = deps.ports.workers.get_worker(room.agent.task_arn)
        task = _describe(deps, room.agent.task_arn)
    return views.room_detail(room, deps.ports.clock.now(), deps.settings.grace_period_seconds, worker, task)


def _describe(deps: ApiDeps, task_arn: str) -> TaskSnapshot | None:
    try:
        found = deps.ports.runner.describe_tasks([task_arn])
    except RunnerUnavailable as error:
        log.warning("ECS could not describe the task", extra={"task_arn": task_arn, "error": str(error)})
        return None
    return found[0] if found else None


def close_room(
    deps: ApiDeps, name: str, request: CloseRequest, time_left: Callable[[], float]
) -> CloseResult:
    """Remove the agent now; with ``delete_room`` delete the LiveKit room first, which ends the
    session for everyone (recorded as LiveKit's ``room_finished`` would be). Idempotent."""
    room = _tracked(deps, name)
    controller = deps.controller
    deleted = False
    if request.delete_room:
        deleted = with_livekit_retries(
            lambda: deps.rooms.delete_room(name), what="delete_room", time_left=time_left
        )
        if room.sid is not None:
            sid = room.sid
            with_livekit_retries(
                lambda: controller.room_gone(name, sid, CloseReason.FORCE_CLOSED),
                what="reconcile",
                time_left=time_left,
            )
    after = with_livekit_retries(lambda: controller.force_close(name), what="reconcile", time_left=time_left)
    after = after or _tracked(deps, name)
    before_token = room.agent.launch_token if room.agent and room.stop_requested_at is None else None
    after_token = after.agent.launch_token if after.agent else None
    log.warning(
        "room closed by an operator",
        extra={"room": name, "delete_room": request.delete_room, "state": after.state.value},
    )
    return CloseResult(
        room=name,
        state=after.state,
        agent_removed=before_token is not None and after_token != before_token,
        room_deleted=deleted,
        relaunched=after_token is not None and after_token != before_token,
    )


def reset_room(deps: ApiDeps, name: str, time_left: Callable[[], float]) -> ResetResult:
    room = _tracked(deps, name)
    after = with_livekit_retries(
        lambda: deps.controller.reset_failed(name), what="reconcile", time_left=time_left
    )
    after = after or _tracked(deps, name)
    return ResetResult(
        room=name, state=after.state, was_failed=room.failed_at is not None, agent=views.agent_status(after)
    )
