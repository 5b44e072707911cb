"""The livekit-agents ``AgentServer`` as this project runs it, and the small face it shows the
runtime (:class:`LiveKitWorker`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from livekit.agents import AgentServer, JobRequest

from agent_worker.session import entrypoint
from agent_worker.settings import JOB_SHUTDOWN_SECONDS, AgentSettings

log = logging.getLogger(__name__)

FULL_LOAD = 1.0
LIVEKIT_MAX_RETRY_DELAY = 10
"""livekit-agents waits ``min(2 * attempt, 10)`` seconds between reconnection attempts."""


def slot_load(slots: int) -> Callable[[AgentServer], float]:
    """Load as the share of job slots in use: LiveKit sends no job to a worker at 1.0."""

    def load(server: AgentServer) -> float:
        return min(len(server.active_jobs) / slots, FULL_LOAD)

    return load


def serve_launched_room(launched_for: str | None) -> Callable[[JobRequest], Awaitable[None]]:
    """A task launched for a room takes only that room's job.

    The control plane launches one task per room and stops that task when the room's agent
    goes. Tasks register with LiveKit in any order, so LiveKit could place room B's job on the
    task launched for room A; stopping A's task would then cut B's agent off mid-call.
    Declining without terminating makes LiveKit offer the job to the next worker: the room's
    own task, which is ready by the time the room's dispatch exists. A task started without a
    room (by hand) takes any job.
    """

    async def on_request(request: JobRequest) -> None:
        if launched_for is not None and request.room.name != launched_for:
            log.info(
                "declined a job for another room",
                extra={"room": request.room.name, "launched_for": launched_for, "job_id": request.id},
            )
            await request.reject(terminate=False)
            return
        await request.accept()

    return on_request


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
    server.rtc_session(
        entrypoint, agent_name=settings.agent_name, on_request=serve_launched_room(settings.launched_for_room)
    )
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
