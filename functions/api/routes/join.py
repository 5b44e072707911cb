"""The app-facing route: a participant token for a human, with the agent asked for at once."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from api.logic import join as logic
from api.models import JoinRequest, JoinResponse
from api.routes.common import INVALID, LIVEKIT_DOWN, POOL_EXHAUSTED, RoomPath, deps_of, responses, time_left

router = Router()


@router.post(
    "/rooms/<room>/join",
    summary="Get a token for a human to join a room; the agent is requested at once",
    description=(
        "Creates the LiveKit room if needed (departure_timeout = grace + margin), reserves the "
        "human's place so the agent is launched (or reused) before the human connects, and "
        "returns the LiveKit URL and a participant token that may join this room only. Safe to "
        "repeat: an existing agent is reused (`reused: true`)."
    ),
    tags=["apps"],
    responses=responses("The token and the agent's status", INVALID, POOL_EXHAUSTED, LIVEKIT_DOWN),
)
def join(room: RoomPath, request: JoinRequest) -> JoinResponse:
    return logic.join(deps_of(router), room, request, time_left(router))
