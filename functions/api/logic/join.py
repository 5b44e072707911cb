"""``POST /rooms/{room}/join``: a participant token, and the agent asked for at once.

The room is opened in LiveKit with ``departure_timeout`` = join reservation + grace + margin
(``create_room``: LiveKit keeps the room as long as the control plane may keep the agent), then
the human's place is reserved in the room record and the room reconciled through the same
``reconcile`` as every webhook (``RoomController.expect_human``), so the cold start, or a warm
slot, begins before the human has connected. An agent the room already has is reused. Both
LiveKit steps are retried on outages (``backoff``); a repeated join is harmless. A room with no
agent, when no slot is free and the pool is at ``MAX_TASKS``, is refused (429, ``Retry-After``)
before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable

from api import views
from api.backoff import with_livekit_retries
from api.errors import PoolExhausted
from api.models import JoinRequest, JoinResponse
from api.tokens import participant_token
from api.wiring import ApiDeps
from control_plane.room import JOIN_RESERVATION_SECONDS

# When a caller refused for capacity should ask again: about one sweep, in which slots free up,
# idle workers are retired and the pool relaunches.
POOL_EXHAUSTED_RETRY_SECONDS = 30


def join(deps: ApiDeps, room: str, request: JoinRequest, time_left: Callable[[], float]) -> JoinResponse:
    controller = deps.controller
    before = deps.ports.rooms.get(room)
    has_agent = before is not None and before.agent is not None and before.stop_requested_at is None
    if not has_agent and controller.capacity.exhausted_for(room):
        # Refused before anything is written: no LiveKit room, no reservation, no token.
        deps.ports.metrics.count("PoolExhausted")
        raise PoolExhausted(room, POOL_EXHAUSTED_RETRY_SECONDS)
    live = with_livekit_retries(lambda: controller.create_room(room), what="create_room", time_left=time_left)
    until = deps.ports.clock.now() + JOIN_RESERVATION_SECONDS
    after = with_livekit_retries(
        lambda: controller.expect_human(live, request.identity, until), what="reconcile", time_left=time_left
    )
    after = after or deps.ports.rooms.get(room)
    assert after is not None, "expect_human records the room"
    token = participant_token(
        deps.credentials(),
        room=room,
        identity=request.identity,
        name=request.name,
        metadata=request.metadata,
        attributes=request.attributes,
        ttl_seconds=request.ttl_seconds,
        departure_timeout=deps.settings.departure_timeout,
    )
    reused = (
        before is not None
        and before.agent is not None
        and after.agent is not None
        and before.agent.launch_token == after.agent.launch_token
    )
    return JoinResponse(
        room=room,
        room_sid=after.sid,
        identity=request.identity,
        url=deps.settings.livekit_url,
        token=token.jwt,
        token_expires_at=token.expires_at,
        agent=views.agent_view(after),
        reused=reused,
    )
