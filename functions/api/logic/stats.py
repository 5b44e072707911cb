"""``GET /stats``: the attention index, the live workers and our ECS tasks (all O(active)),
plus the last hour's counts read back from CloudWatch. A source that cannot be read leaves
its figures null rather than failing the whole answer."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from api import views
from api.models import LastHour, Stats
from api.wiring import ApiDeps
from control_plane.ports import RunnerUnavailable

log = logging.getLogger(__name__)


def stats(deps: ApiDeps) -> Stats:
    ports = deps.ports
    now = ports.clock.now()
    rooms = list(ports.rooms.rooms_needing_attention())
    workers = list(ports.workers.live_workers())
    oldest: float | None
    try:
        oldest = views.oldest_age(ports.runner.list_tasks(), now)
    except RunnerUnavailable as error:
        log.warning("ECS could not list the agent tasks", extra={"error": str(error)})
        oldest = None
    last_hour: LastHour | None
    try:
        counts = deps.counters.last_hour(now)
        last_hour = LastHour(**counts) if counts is not None else None
    except (BotoCoreError, ClientError) as error:
        log.warning("CloudWatch could not be read", extra={"error": str(error)})
        last_hour = None
    return Stats(
        at=now,
        rooms_by_state=views.rooms_by_state(rooms),
        active_agents=views.active_agents(rooms),
        warm_slots=views.warm_slots(workers, rooms, now, deps.settings.worker_stale_seconds),
        oldest_agent_age_seconds=oldest,
        last_hour=last_hour,
    )
