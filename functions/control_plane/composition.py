"""Composition root: real adapters built from settings, once per Lambda container.

Clients are created lazily and kept for warm invocations. The LiveKit secret is read from
Secrets Manager through Powertools ``parameters`` (cached for five minutes, never logged); a
webhook that fails verification may force one fresh read, so a rotation is picked up at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import boto3
from aws_lambda_powertools import Metrics
from botocore.config import Config

from control_plane.adapters.dynamodb_launch_limiter import DynamoDBLaunchLimiter
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.dynamodb_task_count import DynamoDBTaskCount
from control_plane.adapters.ecs_runner import EcsRunner, TaskPlacement
from control_plane.adapters.powertools_metrics import PowertoolsMetrics
from control_plane.adapters.sqs_timers import SqsTimers
from control_plane.controller import RoomController
from control_plane.ports import LiveKitGateway, Ports
from control_plane.settings import TASK_STARTED_BY, Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_sqs.client import SQSClient

    from control_plane.adapters.livekit_gateway import LiveKitApiGateway
    from control_plane.sweeper import Sweeper
    from control_plane.task_events import TaskEventHandler

SECRET_MAX_AGE_SECONDS = 300
# A webhook that fails verification forces a fresh read of the LiveKit secret (it may have
# been rotated), but at most once per this many seconds per container: a flood of forgeries
# then costs Secrets Manager at most 6 reads a minute per warm webhook container. The price is
# that a forgery just before a rotation delays pickup in that container by up to this long.
SECRET_REFETCH_INTERVAL_SECONDS = 10.0

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> float:
        import time

        return time.time()


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()


@lru_cache(maxsize=1)
def secrets_provider() -> SecretsProvider:
    """Our own provider (not Powertools' process-wide default), so :func:`reset` can drop it.

    Its client comes from boto3's default session, like every other client here: left to
    itself the provider opens a session of its own, which loads botocore's endpoint and
    configuration data a second time (~50 ms of a cold webhook).
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=boto3.client("secretsmanager"))


def livekit_credentials(*, force_fetch: bool = False) -> tuple[str, str]:
    """API key and secret from the Secrets Manager secret ``{"api_key": …, "api_secret": …}``.

    ``force_fetch`` skips the cache and stores what it reads, so every later caller (the
    LiveKit gateway too) uses the fresh value.
    """
    secret = secrets_provider().get(
        settings().livekit_secret_arn,
        transform="json",
        max_age=SECRET_MAX_AGE_SECONDS,
        force_fetch=force_fetch,
    )
    if not isinstance(secret, dict) or not secret.get("api_key") or not secret.get("api_secret"):
        raise RuntimeError("LiveKit secret must be JSON with non-empty api_key and api_secret")
    return str(secret["api_key"]), str(secret["api_secret"])


@dataclass
class RefetchGate:
    """Lets one forced secret read through per interval, so forged requests cannot hammer it."""

    interval_seconds: float
    last_at: float | None = None

    def admit(self, now: float) -> bool:
        if self.last_at is not None and now - self.last_at < self.interval_seconds:
            return False
        self.last_at = now
        return True


@lru_cache(maxsize=1)
def secret_refetch_gate() -> RefetchGate:
    return RefetchGate(SECRET_REFETCH_INTERVAL_SECONDS)


def refetched_livekit_credentials(cached: tuple[str, str]) -> tuple[str, str] | None:
    """Re-read the secret past the cache after a failed verification: the new credentials if
    they differ from ``cached``, else None (also when the gate or Secrets Manager says no)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import (
        GetParameterError,
        TransformParameterError,
    )

    if not secret_refetch_gate().admit(time.monotonic()):
        return None
    try:
        fresh = livekit_credentials(force_fetch=True)
    except (GetParameterError, TransformParameterError, RuntimeError) as error:
        log.warning("LiveKit secret could not be re-read", extra={"error": type(error).__name__})
        return None
    if fresh == cached:
        return None
    log.info("LiveKit secret changed since it was cached; using the new one")
    return fresh


def client_config() -> Config:
    """Enough pooled connections for the sweeper's worker threads (boto3 keeps 10), and
    botocore's adaptive retries: throttling slows this client down instead of failing it."""
    return Config(
        max_pool_connections=max(10, settings().sweep_concurrency),
        retries={"mode": "adaptive", "max_attempts": 5},
    )


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=client_config())


@lru_cache(maxsize=1)
def store() -> DynamoDBStore:
    config = settings()
    return DynamoDBStore(
        dynamodb_client(),
        config.table_name,
        config.history_ttl_seconds,
        task_role_id=config.agent_task_role_id,
    )


@lru_cache(maxsize=1)
def livekit_gateway() -> LiveKitApiGateway:
    # livekit-api pulls in aiohttp (~150 ms): import it when the first invocation needs it,
    # not while the module loads, so the cold import stays small.
    from control_plane.adapters.livekit_gateway import LiveKitApiGateway

    return LiveKitApiGateway(settings().livekit_url, livekit_credentials)


class ClientOnFirstCall:
    """A boto3 client made on its first use: a webhook that never sends a timer (or never launches
    a task) does not pay for loading that service's model (~20 ms each, cold)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None

    def built(self) -> Any:
        """The client, made now if it was not yet."""
        if self._client is None:
            self._client = self._make()
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.built(), name)


@lru_cache(maxsize=1)
def ecs_client() -> ClientOnFirstCall:
    return ClientOnFirstCall(lambda: boto3.client("ecs", config=client_config()))


@lru_cache(maxsize=1)
def sqs_client() -> ClientOnFirstCall:
    return ClientOnFirstCall(lambda: boto3.client("sqs"))


class _LiveKitOnFirstCall:
    """The LiveKit port, built on its first call: importing livekit-api loads aiohttp (~150 ms),
    and most webhooks (joins and leaves while no worker is ready) never call LiveKit."""

    def __getattr__(self, name: str) -> Any:
        return getattr(livekit_gateway(), name)


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
        runner=EcsRunner(cast("ECSClient", ecs_client()), placement),
        livekit=cast("LiveKitGateway", _LiveKitOnFirstCall()),
        timers=SqsTimers(cast("SQSClient", sqs_client()), config.timer_queue_url),
        clock=SystemClock(),
        metrics=PowertoolsMetrics(metrics),
        limiter=DynamoDBLaunchLimiter(dynamodb_client(), config.table_name, config.launch_limits),
        tasks=DynamoDBTaskCount(dynamodb_client(), config.table_name),
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
        pool=config.pool_policy,
    )


def sweeper(metrics: Metrics) -> Sweeper:
    """The sweep on the LiveKit gateway's loop; imported here, so other handlers skip it."""
    from control_plane.sweeper import Sweeper

    return Sweeper(ports(metrics), livekit_gateway(), controller_for, settings().sweep_policy)


def task_event_handler(metrics: Metrics) -> TaskEventHandler:
    from control_plane.task_events import TaskEventHandler

    return TaskEventHandler(ports(metrics), controller(metrics), TASK_STARTED_BY, settings().ecs_cluster)


def prime(metrics: Metrics) -> None:
    """Build the ports and every AWS client now, calling nothing (SnapStart's before-snapshot hook).

    Client objects hold no connection until their first call, and a restored function gets
    fresh credentials through the container credentials endpoint, so a snapshot may keep them.
    The LiveKit secret is not read here: no secret, connection or unique value in the snapshot.
    """
    import encodings.idna  # noqa: F401  (the first HTTP request's host name codec, ~15 ms of CPU)

    ports(metrics)
    secrets_provider()
    ecs_client().built()
    sqs_client().built()
    # The first paginator lists botocore's ~400 service folders to load paginators-1.json (~10 ms
    # of CPU): the attention-index queries of the timer, sweeper and API would pay it.
    dynamodb_client().get_paginator("query")


def after_restore() -> None:
    """SnapStart's after-restore hook: forget the LiveKit secret and the LiveKit HTTP session.

    Init reads no secret and opens no connection, so both are normally empty; dropping them
    keeps any later change to init from carrying a secret or a dead connection across a restore.
    """
    if secrets_provider.cache_info().currsize:
        secrets_provider().clear_cache()  # type: ignore[no-untyped-call]
    if livekit_gateway.cache_info().currsize:
        livekit_gateway().close()


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    if livekit_gateway.cache_info().currsize:
        livekit_gateway().close()
    livekit_gateway.cache_clear()
    secrets_provider.cache_clear()
    secret_refetch_gate.cache_clear()
    settings.cache_clear()
    dynamodb_client.cache_clear()
    store.cache_clear()
    ecs_client.cache_clear()
    sqs_client.cache_clear()
    ports.cache_clear()
