"""``POST /livekit/webhook``: LiveKit's signed webhooks, the only route without IAM auth.

The signature is checked over the exact raw body (API Gateway base64-encodes
``application/webhook+json``). Status codes tell LiveKit what to do: 2xx done (including
duplicates and event types we ignore), 4xx never retry, 5xx retry later. Since a 401 is never
retried, a failed check is tried once more with the secret re-read past its cache: a rotated
secret is picked up by the first webhook signed with it.

This function serves one route, so it reads the API Gateway (payload 2.0) event itself and
answers as Powertools' resolver would, without importing the event handler (~35 ms of every cold
start). In Lambda, init runs :func:`prime`: the clients and the signature check a first webhook
needs are built before it arrives, and with SnapStart they are in the snapshot, while nothing
read from AWS or LiveKit is (docs/cold-start.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from control_plane import composition
from control_plane.events import LiveKitEvent, MalformedWebhook, WebhookRejected, verify_webhook
from control_plane.ports import LiveKitUnavailable
from control_plane.settings import MAX_WEBHOOK_BYTES, METRICS_NAMESPACE
from handlers import runtime

logger = Logger(service="livekit-webhook")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-webhook")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-webhook")


def _answer(status: HTTPStatus, body: dict[str, Any]) -> dict[str, Any]:
    """The HTTP API (payload 2.0) response, as Powertools' ``APIGatewayHttpResolver`` shapes it."""
    return {
        "statusCode": int(status),
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


def _error(status: HTTPStatus, message: str) -> dict[str, Any]:
    return _answer(status, {"error": message})


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return str(body).encode("utf-8")


def _header(event: dict[str, Any], name: str) -> str | None:
    """A request header by case-insensitive name (API Gateway lower-cases them; tools may not)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


Route = Callable[[dict[str, Any]], dict[str, Any]]


class _Routes:
    """The little of ``APIGatewayHttpResolver`` one route needs: exact method and path (a named
    stage's prefix removed), the resolver's 404 for anything else."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def post(self, path: str) -> Callable[[Route], Route]:
        def register(route: Route) -> Route:
            self._routes[f"POST {path}"] = route
            return route

        return register

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        context = event.get("requestContext") or {}
        path = str(event.get("rawPath") or "")
        stage = context.get("stage", "$default")
        if stage != "$default":
            path = path[len(f"/{stage}") :]
        route = self._routes.get(f"{str((context.get('http') or {}).get('method', '')).upper()} {path}")
        if route is None:
            return _answer(HTTPStatus.NOT_FOUND, {"statusCode": HTTPStatus.NOT_FOUND, "message": "Not found"})
        return route(event)


app = _Routes()


def _verify(raw: bytes, authorization: str | None) -> LiveKitEvent:
    """Verify with the cached secret; if that fails, once more with a freshly read one.

    Secret rotation must not cost events. Without a signature there is nothing to re-check,
    and ``composition`` limits forced reads per container, so forgeries cannot hammer them.
    """
    credentials = composition.livekit_credentials()
    try:
        return verify_webhook(raw, authorization, *credentials)
    except WebhookRejected:
        fresh = composition.refetched_livekit_credentials(credentials) if authorization else None
        if fresh is None:
            raise
    metrics.add_metric(name="WebhookSecretRefreshed", unit="Count", value=1)
    return verify_webhook(raw, authorization, *fresh)


@app.post("/livekit/webhook")
@tracer.capture_method
def receive_webhook(request: dict[str, Any]) -> dict[str, Any]:
    try:
        raw = _raw_body(request)
    except (binascii.Error, ValueError):
        return _error(HTTPStatus.BAD_REQUEST, "body is not valid base64")
    if len(raw) > MAX_WEBHOOK_BYTES:
        metrics.add_metric(name="WebhookTooLarge", unit="Count", value=1)
        return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body exceeds {MAX_WEBHOOK_BYTES} bytes")
    try:
        event = _verify(raw, _header(request, "authorization"))
    except WebhookRejected as rejected:
        logger.warning("webhook rejected", extra={"reason": str(rejected)})
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        return _error(HTTPStatus.UNAUTHORIZED, "invalid or missing LiveKit signature")
    except MalformedWebhook as malformed:
        logger.warning("malformed webhook", extra={"reason": str(malformed)})
        return _error(HTTPStatus.BAD_REQUEST, str(malformed))
    logger.append_keys(
        event_id=event.id, event_type=event.event, room=event.room.name if event.room else None
    )
    try:
        outcome = composition.controller(metrics).handle_event(event)
    except LiveKitUnavailable:
        logger.exception("LiveKit unavailable; asking LiveKit to retry")
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, "LiveKit unavailable, retry later")
    metrics.add_metric(name="WebhooksProcessed", unit="Count", value=1)
    return _answer(HTTPStatus.OK, {"outcome": outcome})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event)


# A throwaway key pair for priming: it signs one made-up event at init and nothing else.
_PRIMING_KEY, _PRIMING_SECRET = "init-priming", "init-priming-secret-never-used-for-livekit"
_PRIMING_BODY = (
    b'{"event": "room_started", "id": "EV_priming", "createdAt": "0", "room": {"sid": "RM_priming"}}'
)


def prime() -> None:
    """Do at init what every first webhook would: build the AWS clients, run a signature check.

    Lambda runs init code on more CPU than a 512 MB handler gets (a handler's share is 512/1769
    of a vCPU), and with SnapStart once per published version, inside the snapshot. Nothing is
    called over the network: no secret, connection or unique value is kept (docs/cold-start.md).
    """
    import jwt

    composition.prime(metrics)
    digest = base64.b64encode(hashlib.sha256(_PRIMING_BODY).digest()).decode()
    claims = {"iss": _PRIMING_KEY, "exp": int(time.time()) + 60, "sha256": digest}
    verify_webhook(_PRIMING_BODY, jwt.encode(claims, _PRIMING_SECRET), _PRIMING_KEY, _PRIMING_SECRET)


def before_snapshot() -> None:
    """SnapStart only: load livekit-api too (aiohttp, Twirp; ~150 ms). Free inside a snapshot, but
    not worth every on-demand init: only the webhooks that end up calling LiveKit need it."""
    composition.livekit_gateway()


runtime.at_init(prime, before_snapshot)
