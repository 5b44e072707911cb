"""The livekit-agents ``AgentServer`` as this project runs it, and the small face it shows the
runtime (:class:`LiveKitWorker`)."""

from __future__ import annotations

import math
from collections.abc import Callable

from livekit.agents import AgentServer

from agent_worker.session import entrypoint
from agent_worker.settings import JOB_SHUTDOWN_SECONDS, AgentSettings

FULL_LOAD = 1.0
LIVEKIT_MAX_RETRY_DELAY = 10
"""livekit-agents waits ``min(2 * attempt, 10)`` seconds between reconnection attempts."""


def slot_load(slots: int) -> Callable[[AgentServer], float]:
    """Load as the share of job slots in use: LiveKit sends no job to a worker at 1.0."""

    def load(server: AgentServer) -> float:
        return min(len(server.active_jobs) / slots, FULL_LOAD)

    return load


def build_server(settings: AgentSettings) -> AgentServer:
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key.get_secret_value(),
        api_secret=settings.livekit_api_secret.get_secret_value(),
        load_fnc=slot_load(settings.slots_per_task),
        load_threshold=FULL_LOAD,
        num_idle_processes=settings.slots_per_task,
        drain_timeout=settings.drain_timeout_seconds,
        shutdown_process_timeout=JOB_SHUTDOWN_SECONDS,
        port=settings.health_port,
        # keep reconnecting at least as long as we tolerate: the runtime decides when to give up
        max_retry=math.ceil(settings.livekit_unreachable_exit_seconds / LIVEKIT_MAX_RETRY_DELAY) + 5,
        log_level=settings.log_level,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server


class LiveKitWorker:
    """What the runtime needs from the LiveKit worker, over ``AgentServer``."""

    def __init__(self, server: AgentServer) -> None:
        self._server = server

    async def run(self) -> None:
        await self._server.run(devmode=False)

    async def drain(self) -> None:
        """Wait for every job, however long: jobs end on their own grace timers and age caps."""
        await self._server.drain(timeout=None)

    async def aclose(self) -> None:
        await self._server.aclose()

    def jobs(self) -> dict[str, str]:
        """Room name to job id for each running job."""
        try:
            running = self._server.active_jobs
        except AttributeError:  # run() has not built its process pool yet: no jobs
            return {}
        return {info.job.room.name: info.job.id for info in running}

    def connected(self) -> bool:
        """Registered with LiveKit now. AgentServer has no public flag for a lost connection:
        ``_connecting`` is set from the first attempt of each reconnection until registered."""
        return self._server.id != "unregistered" and not self._server._connecting

    def on_registered(self, callback: Callable[[], None]) -> None:
        self._server.on("worker_registered", lambda *_: callback())
