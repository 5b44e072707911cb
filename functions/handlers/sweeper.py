"""Scheduled sweep (EventBridge Scheduler, every minute): the backstop for every other trigger.

Two kinds of input. The schedule's (and the after-deploy rule's) is informational
(``scheduled_time``, ``execution_id``: Scheduler context attributes), only logged; any such
input, ``{}`` included, starts this minute's sweep: with ``SWEEP_GROUPS`` above 1 it sends one
message per group to the sweep queue and returns. The sweep queue's records (one a batch) each
name a group (``{"sweep_group": 3, "sweep_groups": 16, "untracked": false}``), whose shards this
invocation sweeps; a malformed one is logged and dropped (retrying cannot fix it). A sweep
watches the invocation's remaining time and leaves the rest to the next one, so it never times
out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from control_plane import composition
from control_plane.settings import METRICS_NAMESPACE
from control_plane.sweeper import wiring
from control_plane.sweeper.fan_out import GroupEvent
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
    def remaining() -> float:
        return context.get_remaining_time_in_millis() / MILLISECONDS

    if "Records" in event:  # the sweep queue: one group a record
        return {"groups": [_group(record.get("body", ""), remaining) for record in event["Records"]]}
    logger.append_keys(scheduled_time=event.get("scheduled_time"), execution_id=event.get("execution_id"))
    report = wiring.sweep_fan_out(metrics).scheduled(remaining)
    if report.failed:
        metrics.add_metric(name="SweepGroupsNotStarted", unit="Count", value=len(report.failed))
    if len(report.swept) == 1:
        return asdict(report.swept[0])  # one group: the sweep's own report, as before the groups
    return asdict(report)


def _group(body: str, remaining: Callable[[], float]) -> dict[str, Any]:
    try:
        group = GroupEvent.model_validate_json(body)
    except ValidationError as invalid:
        logger.error("malformed sweep group dropped", extra={"errors": invalid.errors(include_url=False)})
        metrics.add_metric(name="SweepGroupsMalformed", unit="Count", value=1)
        return {"outcome": "malformed"}
    logger.append_keys(sweep_group=group.sweep_group, sweep_groups=group.sweep_groups)
    return asdict(wiring.sweep_fan_out(metrics).group(group, remaining))


def prime() -> None:
    """At init, what the first sweep would build: ports, clients, the sweep and its LiveKit gateway
    (livekit-api and aiohttp). Nothing is called over the network."""
    composition.prime(metrics)
    wiring.sweep_fan_out(metrics)


runtime.at_init(prime)
