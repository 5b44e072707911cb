"""Composition root: real adapters built from settings, once per Lambda container.

Clients are created lazily and kept for warm invocations. The LiveKit secret is read from
Secrets Manager through Powertools ``parameters`` (cached for five minutes, never logged).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools import Metrics

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.ecs_runner import EcsRunner, TaskPlacement
from control_plane.adapters.powertools_metrics import PowertoolsMetrics
from control_plane.adapters.sqs_timers import SqsTimers
from control_plane.controller import RoomController
from control_plane.ports import Ports
from control_plane.settings import TASK_STARTED_BY, Settings

if TYPE_CHECKING:
    from control_plane.adapters.livekit_gateway import LiveKitApiGateway

SECRET_MAX_AGE_SECONDS = 300


class SystemClock:
    def now(self) -> float:
        import time

        return time.time()


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()


def livekit_credentials() -> tuple[str, str]:
    """API key and secret from the Secrets Manager secret ``{"api_key": …, "api_secret": …}``."""
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(
        settings().livekit_secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS
    )
    if not isinstance(secret, dict) or not secret.get("api_key") or not secret.get("api_secret"):
        raise RuntimeError("LiveKit secret must be JSON with non-empty api_key and api_secret")
    return str(secret["api_key"]), str(secret["api_secret"])


@lru_cache(maxsize=1)
def store() -> DynamoDBStore:
    return DynamoDBStore(boto3.client("dynamodb"), settings().table_name)


@lru_cache(maxsize=1)
def livekit_gateway() -> LiveKitApiGateway:
    # livekit-api pulls in aiohttp (~150 ms): import it when the first invocation needs it,
    # not while the module loads, so the cold import stays small.
    from control_plane.adapters.livekit_gateway import LiveKitApiGateway

    return LiveKitApiGateway(settings().livekit_url, livekit_credentials)


@lru_cache(maxsize=1)
def ports(metrics: Metrics) -> Ports:
    config = settings()
    table = store()
    placement = TaskPlacement(
        cluster=config.ecs_cluster,
        task_definition=config.task_definition,
        container_name=config.agent_container_name,
        subnets=config.subnet_ids,
        security_groups=config.security_group_ids,
        capacity_provider=config.capacity_provider,
        assign_public_ip=config.assign_public_ip,
        started_by=TASK_STARTED_BY,
    )
    return Ports(
        rooms=table,
        workers=table,
        runner=EcsRunner(boto3.client("ecs"), placement),
        livekit=livekit_gateway(),
        timers=SqsTimers(boto3.client("sqs"), config.timer_queue_url),
        clock=SystemClock(),
        metrics=PowertoolsMetrics(metrics),
    )


def controller(metrics: Metrics) -> RoomController:
    config = settings()
    return RoomController(
        ports(metrics),
        config.policy,
        departure_timeout=config.departure_timeout,
        event_ttl_seconds=config.event_dedupe_ttl_seconds,
    )


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    if livekit_gateway.cache_info().currsize:
        livekit_gateway().close()
    livekit_gateway.cache_clear()
    settings.cache_clear()
    store.cache_clear()
    ports.cache_clear()
