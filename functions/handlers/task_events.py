"""ECS "Task State Change" events for our agent tasks, from an EventBridge rule.

A malformed event is logged and dropped (retrying cannot fix it); any other failure raises, so
Lambda retries the asynchronous invocation and then sends it to the dead-letter queue. Handling
is idempotent, so those retries are safe.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from control_plane import composition
from control_plane.settings import METRICS_NAMESPACE
from control_plane.task_events import EcsTaskStateChange
from handlers import runtime

logger = Logger(service="livekit-task-events")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-task-events")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-task-events")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        change = EcsTaskStateChange.model_validate(event)
    except ValidationError as invalid:
        logger.error(
            "malformed task state change dropped", extra={"errors": invalid.errors(include_url=False)}
        )
        metrics.add_metric(name="TaskEventsMalformed", unit="Count", value=1)
        return {"outcome": "malformed"}
    detail = change.detail
    logger.append_keys(
        task_arn=detail.task_arn,
        last_status=detail.last_status,
        ecs_version=detail.version,
        event_id=change.id,
    )
    outcome = composition.task_event_handler(metrics).handle(change)
    metrics.add_metric(name="TaskEventsProcessed", unit="Count", value=1)
    return {"outcome": outcome.value}


def prime() -> None:
    """At init, what the first event would build: ports, clients and the task-event handler.
    Nothing is called over the network."""
    composition.task_event_handler(metrics)
    composition.prime(metrics)


runtime.at_init(prime)
