"""HTTP API for app backends and operators: join tokens, room status, operator commands.

Every route is behind API Gateway's IAM authorizer (SigV4); only the LiveKit webhook, a
function of its own, is open. One resolver validates requests and responses against the
pydantic models (``api/models.py``); routers per noun live in ``api/routes``. Errors are
answered here, each with what to do next: the logic below raises, never answers.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from api import spec, wiring
from api.errors import BadCursor, LiveKitRefused, PoolExhausted, RoomNotFound
from api.models import ErrorBody, FieldError
from api.routes import gc, join, rooms, stats
from api.routes.common import DEPS
from control_plane import composition
from control_plane.adapters.livekit_gateway import LiveKitRejectedError
from control_plane.ports import LiveKitUnavailable, RunnerUnavailable, VersionConflict
from control_plane.settings import METRICS_NAMESPACE
from handlers import runtime

logger = Logger(service="livekit-api")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane", "api"})
tracer = Tracer(service="livekit-api")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-api")

app = APIGatewayHttpResolver(enable_validation=True)
for module in (join, rooms, stats, gc):
    app.include_router(module.router)

RETRY_AFTER_SECONDS = 5
_VALUE_ERROR = "Value error, "


def _answer(status: HTTPStatus, body: ErrorBody, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(),
        headers=headers,
    )


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, spec.document(app))


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response[str]:
    """400 for a body that is not JSON; 422 naming every field that breaks a rule, and why."""
    problems = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return _answer(HTTPStatus.BAD_REQUEST, ErrorBody(error="request body is not valid JSON"))
    fields = [
        FieldError(
            field=".".join(str(part) for part in problem.get("loc", ())),
            reason=str(problem.get("msg", "invalid")).removeprefix(_VALUE_ERROR),
        )
        for problem in problems
    ]
    return _answer(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorBody(error="request is not valid", fields=fields))


@app.exception_handler(RoomNotFound)
def room_not_found(error: RoomNotFound) -> Response[str]:
    return _answer(
        HTTPStatus.NOT_FOUND,
        ErrorBody(
            error=f"room {error.room!r} is not tracked: no human was ever seen there, or its history "
            "expired. GET /rooms lists the active rooms."
        ),
    )


@app.exception_handler(BadCursor)
def bad_cursor(error: BadCursor) -> Response[str]:
    return _answer(
        HTTPStatus.BAD_REQUEST,
        ErrorBody(error=f"{error}: pass the next_cursor of the previous page, or none to start over"),
    )


@app.exception_handler([LiveKitUnavailable, RunnerUnavailable, VersionConflict])
def unavailable(error: Exception) -> Response[str]:
    logger.warning("request could not complete", extra={"error": str(error), "kind": type(error).__name__})
    what = "LiveKit is unavailable" if isinstance(error, LiveKitUnavailable) else "the room is busy"
    return _answer(
        HTTPStatus.SERVICE_UNAVAILABLE,
        ErrorBody(error=f"{what}; nothing was lost, try again in {RETRY_AFTER_SECONDS} s"),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@app.exception_handler(PoolExhausted)
def pool_exhausted(error: PoolExhausted) -> Response[str]:
    logger.warning("join refused: pool exhausted", extra={"room": error.room})
    return _answer(
        HTTPStatus.TOO_MANY_REQUESTS,
        ErrorBody(
            error=f"no agent capacity now (the pool is at MAX_TASKS); nothing was written, try again in "
            f"{error.retry_after} s"
        ),
        headers={"Retry-After": str(error.retry_after)},
    )


@app.exception_handler([LiveKitRefused, LiveKitRejectedError])
def livekit_refused(error: Exception) -> Response[str]:
    logger.error("LiveKit refused a call", extra={"error": str(error)})
    return _answer(
        HTTPStatus.BAD_GATEWAY,
        ErrorBody(
            error="LiveKit refused the call: check the stack's LiveKitUrl and the API key and secret "
            "in its LiveKit secret"
        ),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app.append_context(**{DEPS: wiring.deps(metrics)})
    return app.resolve(event, context)


def prime() -> None:
    """At init, what a first request would build: the core's ports and clients and the API's own
    (docs/cold-start.md); nothing is called over the network."""
    composition.prime(metrics)
    wiring.deps(metrics)


runtime.at_init(prime)
