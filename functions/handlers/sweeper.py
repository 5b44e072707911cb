"""Scheduled sweep (EventBridge Scheduler, every minute): the backstop for every other trigger.

The schedule's input is informational (``scheduled_time``, ``execution_id``: Scheduler context
attributes) and only logged; any input, ``{}`` included, runs one sweep. The sweep watches the
invocation's remaining time and leaves the rest to the next one, so it never times out.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from control_plane import composition
from control_plane.settings import METRICS_NAMESPACE
from handlers import runtime

logger = Logger(service="livekit-sweeper")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-sweeper")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-sweeper")

MILLISECONDS = 1000


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(scheduled_time=event.get("scheduled_time"), execution_id=event.get("execution_id"))
    report = composition.sweeper(metrics).sweep(
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / MILLISECONDS
    )
    return asdict(report)


def prime() -> None:
    """At init, what the first sweep would build: ports, clients, the sweep and its LiveKit gateway
    (livekit-api and aiohttp). Nothing is called over the network."""
    composition.prime(metrics)
    composition.sweeper(metrics)


runtime.at_init(prime)
