"""What the API's logic works with, built once per Lambda container from the core's composition.

The controller, the ports and the LiveKit gateway are the core's own (``control_plane
.composition``), so the API acts exactly as every other trigger; the adapters the core has no
use for (a page of the attention index, CloudWatch read-back, deleting a LiveKit room) are built
here. :func:`reset` forgets them, as ``composition.reset`` does the core's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools import Metrics

from api.counters import CloudWatchCounters
from api.livekit_rooms import LiveKitRoomDeleter
from api.room_index import RoomIndex
from control_plane import composition
from control_plane.controller import RoomController
from control_plane.ports import Ports
from control_plane.settings import METRICS_NAMESPACE, Settings

if TYPE_CHECKING:
    from control_plane.sweeper import Sweeper


@dataclass(frozen=True)
class ApiDeps:
    settings: Settings
    controller: RoomController
    ports: Ports
    index: RoomIndex
    counters: CloudWatchCounters
    rooms: LiveKitRoomDeleter
    credentials: Callable[[], tuple[str, str]]
    sweeper: Callable[[], Sweeper]


@lru_cache(maxsize=1)
def deps(metrics: Metrics) -> ApiDeps:
    settings = composition.settings()
    return ApiDeps(
        settings=settings,
        controller=composition.controller(metrics),
        ports=composition.ports(metrics),
        index=RoomIndex(composition.dynamodb_client(), settings.table_name),
        counters=CloudWatchCounters(boto3.client("cloudwatch"), METRICS_NAMESPACE),
        rooms=LiveKitRoomDeleter(
            composition.livekit_gateway(), settings.livekit_url, composition.livekit_credentials
        ),
        credentials=composition.livekit_credentials,
        sweeper=lambda: composition.sweeper(metrics),
    )


def reset() -> None:
    deps.cache_clear()
