"""Operator routes on rooms: list, show, close, reset."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from api.logic import rooms as logic
from api.models import (
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    CloseRequest,
    CloseResult,
    ResetResult,
    RoomDetail,
    RoomPage,
)
from api.routes.common import INVALID, LIVEKIT_DOWN, NOT_FOUND, RoomPath, deps_of, responses, time_left
from control_plane.room import RoomState

router = Router()


@router.get(
    "/rooms",
    summary="List the rooms that are not settled, in name order",
    description=(
        "Reads the sparse attention index (starting, active, grace, stopping, failed rooms and "
        "humans waiting for an agent): never a table scan. Closed rooms are read by name."
    ),
    tags=["operators"],
    responses=responses("One page of rooms", INVALID),
)
def list_rooms(
    state: Annotated[RoomState | None, Query(description="Only rooms in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX, description="Rooms read for this page")] = (
        PAGE_SIZE_DEFAULT
    ),
    cursor: Annotated[str | None, Query(max_length=1024, description="next_cursor of the last page")] = None,
) -> RoomPage:
    return logic.list_rooms(deps_of(router), state, limit, cursor)


@router.get(
    "/rooms/<room>",
    summary="One room: humans, agent, grace, crashes, expiry",
    tags=["operators"],
    responses=responses("The room", INVALID, NOT_FOUND),
)
def show_room(room: RoomPath) -> RoomDetail:
    return logic.show_room(deps_of(router), room)


@router.post(
    "/rooms/<room>/close",
    summary="Remove the room's agent now; optionally delete the LiveKit room",
    description=(
        "Deletes the agent's dispatch and stops its task. Humans still in the room get a fresh "
        "agent at once (the control plane never leaves humans without one); with "
        "`delete_room: true` the LiveKit room is deleted first, disconnecting everyone and "
        "ending the session. Idempotent."
    ),
    tags=["operators"],
    responses=responses("What the close did", INVALID, NOT_FOUND, LIVEKIT_DOWN),
)
def close_room(room: RoomPath, request: Annotated[CloseRequest | None, Body()] = None) -> CloseResult:
    return logic.close_room(deps_of(router), room, request or CloseRequest(), time_left(router))


@router.post(
    "/rooms/<room>/reset",
    summary="Clear a failed (crash-looping) room so its humans get an agent",
    tags=["operators"],
    responses=responses("The room after the reset", INVALID, NOT_FOUND, LIVEKIT_DOWN),
)
def reset_room(room: RoomPath) -> ResetResult:
    return logic.reset_room(deps_of(router), room, time_left(router))
