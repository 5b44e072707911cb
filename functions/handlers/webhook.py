"""``POST /livekit/webhook``: LiveKit's signed webhooks, the only route without IAM auth.

The signature is checked over the exact raw body (API Gateway base64-encodes
``application/webhook+json``). Status codes tell LiveKit what to do: 2xx done (including
duplicates and event types we ignore), 4xx never retry, 5xx retry later. Since a 401 is never
retried, a failed check is tried once more with the secret re-read past its cache: a rotated
secret is picked up by the first webhook signed with it.
"""

from __future__ import annotations

import base64
import binascii
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from control_plane import composition
from control_plane.events import LiveKitEvent, MalformedWebhook, WebhookRejected, verify_webhook
from control_plane.ports import LiveKitUnavailable
from control_plane.settings import MAX_WEBHOOK_BYTES, METRICS_NAMESPACE

logger = Logger(service="livekit-webhook")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-webhook")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-webhook")
app = APIGatewayHttpResolver()


def _error(status: HTTPStatus, message: str) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": message})


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8")


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
def receive_webhook() -> Response[Any]:
    try:
        raw = _raw_body()
    except (binascii.Error, ValueError):
        return _error(HTTPStatus.BAD_REQUEST, "body is not valid base64")
    if len(raw) > MAX_WEBHOOK_BYTES:
        metrics.add_metric(name="WebhookTooLarge", unit="Count", value=1)
        return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body exceeds {MAX_WEBHOOK_BYTES} bytes")
    try:
        event = _verify(raw, app.current_event.headers.get("authorization"))
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
    return Response(
        status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body={"outcome": outcome}
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
