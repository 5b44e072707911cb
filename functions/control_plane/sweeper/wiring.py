"""What only the sweeper function builds: the fan-out over its groups and, on AWS, the sweep
queue it sends them to (the other functions' roles may not send there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aws_lambda_powertools import Metrics

from control_plane import composition
from control_plane.adapters.sqs_sweep_groups import SqsSweepGroups
from control_plane.sweeper.fan_out import SweepFanOut

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


def sweep_fan_out(metrics: Metrics) -> SweepFanOut:
    """Without a sweep queue (the local stack, ``make dev``) every group runs in the invocation."""
    config = composition.settings()
    invoker = None
    if config.sweep_queue_url:
        invoker = SqsSweepGroups(cast("SQSClient", composition.sqs_client()), config.sweep_queue_url)
    policy = config.sweep_policy
    return SweepFanOut(
        composition.sweeper(metrics),
        config.sweep_groups,
        config.sweep_untracked_every,
        policy.sweep_interval_seconds,
        composition.SystemClock().now,
        invoker,
    )
