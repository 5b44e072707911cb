"""Composition root: real adapters built from settings, once per Lambda container.

Clients are created lazily and kept for warm invocations. The LiveKit secret is read from
Secrets Manager through Powertools ``parameters`` (cached for five minutes, never logged).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools import Metrics
from botocore.config import Config

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.ecs_runner import EcsRunner, TaskPlacement
from control_plane.adapters.powertools_metrics import PowertoolsMetrics
from control_plane.adapters.sqs_timers import SqsTimers
from control_plane.controller import RoomController
from control_plane.ports import Ports
from control_plane.settings import TASK_STARTED_BY, Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from control_plane.adapters.livekit_gateway import LiveKitApiGateway
    from control_plane.sweeper import Sweeper
    from control_plane.task_events import TaskEventHandler

SECRET_MAX_AGE_SECONDS = 300


class SystemClock:
    def now(self) -> float:
        import time

        return time.time()


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()


@lru_cache(maxsize=1)
def secrets_provider() -> SecretsProvider:
    """Our own provider (not Powertools' process-wide default), so :func:`reset` can drop it."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider()


def livekit_credentials() -> tuple[str, str]:
    """API key and secret from the Secrets Manager secret ``{"api_key": …, "api_secret": …}``."""
    secret = secrets_provider().get(
        settings().livekit_secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS
    )
    if not isinstance(secret, dict) or not secret.get("api_key") or not secret.get("api_secret"):
        raise RuntimeError("LiveKit secret must be JSON with non-empty api_key and api_secret")
    return str(secret["api_key"]), str(secret["api_secret"])


def client_config() -> Config:
    """Enough pooled connections for the sweeper's worker threads (boto3 keeps 10)."""
    return Config(max_pool_connections=max(10, settings().sweep_concurrency))


@lru_cache(maxsize=1)
def store() -> DynamoDBStore:
    return DynamoDBStore(boto3.client("dynamodb", config=client_config()), settings().table_name)


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
        runner=EcsRunner(boto3.client("ecs", config=client_config()), placement),
        livekit=livekit_gateway(),
        timers=SqsTimers(boto3.client("sqs"), config.timer_queue_url),
        clock=SystemClock(),
        metrics=PowertoolsMetrics(metrics),
    )


def controller(metrics: Metrics) -> RoomController:
    return controller_for(ports(metrics))


def controller_for(room_ports: Ports) -> RoomController:
    config = settings()
    return RoomController(
        room_ports,
        config.policy,
        departure_timeout=config.departure_timeout,
        event_ttl_seconds=config.event_dedupe_ttl_seconds,
    )


def sweeper(metrics: Metrics) -> Sweeper:
    """The sweep on the LiveKit gateway's loop; imported here, so other handlers skip it."""
    from control_plane.sweeper import Sweeper, SweepPolicy

    config = settings()
    policy = SweepPolicy(
        agent_name=config.agent_name,
        grace_seconds=config.grace_period_seconds,
        agent_ttl_seconds=config.agent_ttl_seconds,
        settle_seconds=config.claim_lease_seconds,
        worker_stale_seconds=config.worker_stale_seconds,
        worker_start_timeout_seconds=config.worker_start_timeout_seconds,
        max_agent_age_seconds=config.max_agent_age_seconds,
        warm_tasks=config.warm_tasks,
        slots_per_task=config.slots_per_task,
        concurrency=config.sweep_concurrency,
        safety_margin_seconds=config.sweep_safety_margin_seconds,
    )
    return Sweeper(ports(metrics), livekit_gateway(), controller_for, policy)


def task_event_handler(metrics: Metrics) -> TaskEventHandler:
    from control_plane.task_events import TaskEventHandler

    return TaskEventHandler(ports(metrics), controller(metrics), TASK_STARTED_BY, settings().ecs_cluster)


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    if livekit_gateway.cache_info().currsize:
        livekit_gateway().close()
    livekit_gateway.cache_clear()
    secrets_provider.cache_clear()
    settings.cache_clear()
    store.cache_clear()
    ports.cache_clear()
