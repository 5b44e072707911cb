"""``POST /livekit/webhook``: LiveKit's signed webhooks, the only route without IAM auth.

The signature is checked over the exact raw body (API Gateway base64-encodes
``application/webhook+json``). Status codes tell LiveKit what to do: 2xx done (including
duplicates and event types we ignore), 4xx never retry, 5xx retry later.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from control_plane import composition
from control_plane.events import MalformedWebhook, WebhookRejected, verify_webhook
from control_plane.ports import LiveKitUnavailable
from control_plane.settings import MAX_WEBHOOK_BYTES, METRICS_NAMESPACE

logger = Logger(service="livekit-webhook")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-webhook")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-webhook")
app = APIGatewayHttpResolver()


def _error(status: int, message: str) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": message})


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8")


@app.post("/livekit/webhook")
@tracer.capture_method
def receive_webhook() -> Response[Any]:
    try:
        raw = _raw_body()
    except (binascii.Error, ValueError):
        return _error(400, "body is not valid base64")
    if len(raw) > MAX_WEBHOOK_BYTES:
        metrics.add_metric(name="WebhookTooLarge", unit="Count", value=1)
        return _error(413, f"body exceeds {MAX_WEBHOOK_BYTES} bytes")
    api_key, api_secret = composition.livekit_credentials()
    try:
        event = verify_webhook(raw, app.current_event.headers.get("authorization"), api_key, api_secret)
    except WebhookRejected as rejected:
        logger.warning("webhook rejected", extra={"reason": str(rejected)})
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        return _error(401, "invalid or missing LiveKit signature")
    except MalformedWebhook as malformed:
        logger.warning("malformed webhook", extra={"reason": str(malformed)})
        return _error(400, str(malformed))
    logger.append_keys(
        event_id=event.id, event_type=event.event, room=event.room.name if event.room else None
    )
    try:
        outcome = composition.controller(metrics).handle_event(event)
    except LiveKitUnavailable:
        logger.exception("LiveKit unavailable; asking LiveKit to retry")
        return _error(503, "LiveKit unavailable, retry later")
    metrics.add_metric(name="WebhooksProcessed", unit="Count", value=1)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body={"outcome": outcome})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
