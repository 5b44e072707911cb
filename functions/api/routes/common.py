"""What every router shares: the room path parameter, documented error answers, and the
request's dependencies and time left (the handler puts ``deps`` in the routing context)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from api.models import ROOM_NAME_RULE, ErrorBody, RoomName
from api.wiring import ApiDeps

RoomPath = Annotated[RoomName, Path(description=ROOM_NAME_RULE)]

MILLISECONDS = 1000
DEPS = "deps"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}


NOT_FOUND = {HTTPStatus.NOT_FOUND.value: _error("The room is not tracked")}
# Powertools documents its own 422 shape on every route; the handler answers with ErrorBody.
UNPROCESSABLE = {HTTPStatus.UNPROCESSABLE_ENTITY.value: _error("Fields that break a rule, named with why")}
INVALID = {
    HTTPStatus.BAD_REQUEST.value: _error("The body is not JSON, or the cursor is not one this API gave"),
    **UNPROCESSABLE,
}
POOL_EXHAUSTED = {
    HTTPStatus.TOO_MANY_REQUESTS.value: _error("No agent capacity (pool at MAX_TASKS); see Retry-After"),
}
LIVEKIT_DOWN = {
    HTTPStatus.SERVICE_UNAVAILABLE.value: _error("LiveKit unavailable after retries; see Retry-After"),
    HTTPStatus.BAD_GATEWAY.value: _error("LiveKit refused the call (the stack's LiveKit secret or URL)"),
}


def responses(ok: str, *errors: dict[int, dict[str, Any]]) -> dict[int, Any]:
    """The route's OpenAPI answers: ``ok`` with its return model, then the errors it may give."""
    documented: dict[int, Any] = {HTTPStatus.OK.value: {"description": ok}}
    for error in errors:
        documented |= error
    return documented


def deps_of(router: Router) -> ApiDeps:
    deps = router.context[DEPS]
    assert isinstance(deps, ApiDeps)
    return deps


def time_left(router: Router) -> Callable[[], float]:
    """Seconds this invocation has left, for work that must stop in time."""
    context = router.lambda_context
    return lambda: context.get_remaining_time_in_millis() / MILLISECONDS
