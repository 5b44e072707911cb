"""The livekit-agents ``AgentServer`` as this project runs it, and the small face it shows the
runtime (:class:`LiveKitWorker`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from livekit.agents import AgentServer, JobRequest

from agent_worker.job_budget import JobBudget
from agent_worker.session import entrypoint, prepare_process
from agent_worker.settings import JOB_SHUTDOWN_SECONDS, AgentSettings
from control_plane.worker_protocol import agent_identity

log = logging.getLogger(__name__)

FULL_LOAD = 1.0
PROCESS_INITIALIZE_SECONDS = 30.0
LIVEKIT_MAX_RETRY_DELAY = 10
"""livekit-agents waits ``min(2 * attempt, 10)`` seconds between reconnection attempts."""


def slot_load(slots: int, budget: JobBudget) -> Callable[[AgentServer], float]:
    """Load as the share of job slots in use, and full once the worker has taken its last job:
    LiveKit sends no job to a worker at 1.0."""

    def load(server: AgentServer) -> float:
        if budget.spent:
            return FULL_LOAD
        return min(len(server.active_jobs) / slots, FULL_LOAD)

    return load


def accept_jobs(budget: JobBudget, task_arn: str) -> Callable[[JobRequest], Awaitable[None]]:
    """Take any room's job while the worker has jobs left: workers are fungible, and the
    control plane reserves a slot on some ready worker before it dispatches, so a task launched
    for one room may well host another (``LAUNCHED_FOR_ROOM`` is only a hint). Once spent,
    decline without terminating, so LiveKit offers the job to another worker.

    A job is accepted as :func:`agent_identity` of this task: LiveKit records that identity on
    the job, which is how the control plane confirms this task's ``JobStarted``."""

    async def on_request(request: JobRequest) -> None:
        if not budget.take():
            log.info(
                "declined a job: this worker has taken its JOBS_PER_TASK jobs",
                extra={"room": request.room.name, "job_id": request.id, "jobs_per_task": budget.limit},
            )
            await request.reject(terminate=False)
            return
        started = False
        try:
            await request.accept(identity=agent_identity(request.id, task_arn))
            started = True
        finally:
            budget.settled(started=started)
        log.info(
            "accepted a job",
            extra={
                "room": request.room.name,
                "job_id": request.id,
                "taken": budget.taken,
                "of": budget.limit,
            },
        )

    return on_request


def build_server(settings: AgentSettings, budget: JobBudget, task_arn: str) -> AgentServer:
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key.get_secret_value(),
        api_secret=settings.livekit_api_secret.get_secret_value(),
        load_fnc=slot_load(settings.slots_per_task, budget),
        load_threshold=FULL_LOAD,
        # a warm process per job it may still run at once, no more
        num_idle_processes=min(settings.slots_per_task, settings.jobs_per_task),
        drain_timeout=settings.drain_timeout_seconds,
        shutdown_process_timeout=JOB_SHUTDOWN_SECONDS,
        # an idle process builds what its job will need (prepare_process): slow on a busy small task
        initialize_process_timeout=PROCESS_INITIALIZE_SECONDS,
        port=settings.health_port,
        # keep reconnecting at least as long as we tolerate: the runtime decides when to give up
        max_retry=math.ceil(settings.livekit_unreachable_exit_seconds / LIVEKIT_MAX_RETRY_DELAY) + 5,
        log_level=settings.log_level,
    )
    server.setup_fnc = prepare_process
    server.rtc_session(entrypoint, agent_name=settings.agent_name, on_request=accept_jobs(budget, task_arn))
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
