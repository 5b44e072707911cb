"""``python -m local.stack.sim_worker``: a lightweight agent worker for the LiveKit simulator.

It is the real worker minus livekit-agents: the agent container's own runtime and lifecycle
(``agent_worker.runtime``, ``agent_worker.lifecycle``) and its side of the worker protocol
(``agent_worker.registry``: the ``TASK#`` record with heartbeats that hears ``draining``, the
``worker_ready`` signal, ``job_ended`` reports), driving the simulator's worker API instead of a
LiveKit WebSocket. Each job it is handed is reported with ``job_started``; it ends when LiveKit
ends it (dispatch deleted, room closed), and is reported with ``job_ended``. Its ``JOBS_PER_TASK``
budget is the agent's own (``agent_worker.job_budget``): once those jobs have ended it drains and
exits 0, and it leaves the simulator at once so no job lands on a worker about to exit (the
simulator, unlike LiveKit, cannot offer a job elsewhere when a worker declines it). SIGTERM drains
within ``DRAIN_TIMEOUT_SECONDS``; the simulator out of reach for ``LIVEKIT_UNREACHABLE_EXIT_SECONDS``
exits 1; losing the stack that started it is a SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

import boto3
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_worker.clock import SystemClock
from agent_worker.job_budget import JobBudget
from agent_worker.lifecycle import WorkerLifecycle
from agent_worker.registry import DynamoWorkerRecord, SqsJobReports, SqsReadySignal
from agent_worker.runtime import WorkerRuntime
from control_plane.worker_protocol import LAUNCHED_FOR_ROOM_ENV, JobEnded, JobOutcome, JobStarted
from local.livekit_sim.client import SimulatorClient, SimulatorError
from local.livekit_sim.models import JobAssignment, JobTermination, WorkerMessage

log = logging.getLogger("sim_worker")

POLL_WAIT_SECONDS = 1.0  # a long poll this short lets the worker stop promptly
NOT_FOUND = 404


class SimWorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    simulator_url: str = Field(min_length=1, description="The LiveKit simulator (its worker API)")
    agent_name: str = Field("voice-agent", min_length=1)
    slots_per_task: int = Field(1, ge=1, description="Jobs this worker serves at once")
    jobs_per_task: int = Field(1, ge=1, description="Jobs this worker takes in its life, then drains")
    task_arn: str = Field(min_length=1, description="Set by the local runner")
    launched_for_room: str | None = Field(None, validation_alias=LAUNCHED_FOR_ROOM_ENV)
    table_name: str = Field(min_length=1)
    timer_queue_url: str = Field(min_length=1)
    agent_task_role_id: str = Field("", description="Empty locally, as the control plane's")
    heartbeat_seconds: float = Field(5.0, gt=0)
    drain_timeout_seconds: float = Field(5.0, gt=0)
    livekit_unreachable_exit_seconds: float = Field(30.0, gt=0)
    cold_start_seconds: float = Field(0.0, ge=0, description="Wait before registering, like an image pull")
    local_stack_pid: int | None = Field(None, description="Exit when this parent is gone")


class SimulatorWorker:
    """``agent_worker.runtime.LiveKitWorkerPort`` over the simulator's worker API."""

    def __init__(
        self, client: SimulatorClient, settings: SimWorkerSettings, reports: SqsJobReports, budget: JobBudget
    ) -> None:
        self._client = client
        self._settings = settings
        self._reports = reports
        self._budget = budget
        self._worker_id: str | None = None
        self._connected = False
        self._closing = asyncio.Event()
        self._draining = False
        self._jobs: dict[str, tuple[str, str, float]] = {}  # job id -> (room, dispatch id, started)
        self._registered: list[Callable[[], None]] = []

    # --- LiveKitWorkerPort ----------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.sleep(self._settings.cold_start_seconds)
        while not self._closing.is_set():
            if self._worker_id is None and not self._draining:
                await self._register()
                continue
            if self._worker_id is None:  # drained and unregistered: wait to be closed
                await self._closing.wait()
                return
            await self._poll(self._worker_id)

    async def drain(self) -> None:
        """Take no new job; return once the running ones have ended (LiveKit ends them)."""
        self._draining = True
        while self._jobs:
            await asyncio.sleep(0.1)
        await self._unregister()

    async def aclose(self) -> None:
        self._closing.set()
        await self._unregister()

    def jobs(self) -> dict[str, str]:
        return {room: job_id for job_id, (room, _, _) in self._jobs.items()}

    def connected(self) -> bool:
        return self._connected

    def on_registered(self, callback: Callable[[], None]) -> None:
        self._registered.append(callback)

    # --- the simulator --------------------------------------------------------------------

    async def _register(self) -> None:
        try:
            self._worker_id = await asyncio.to_thread(
                self._client.register_worker,
                self._settings.agent_name,
                self._settings.slots_per_task,
                self._settings.task_arn,
            )
        except SimulatorError as error:
            self._connected = False
            log.warning("could not register with the simulator: %s", error.message)
            await self._pause(1.0)
            return
        self._connected = True
        log.info("registered with the simulator as %s", self._worker_id)
        for callback in self._registered:
            callback()

    async def _poll(self, worker_id: str) -> None:
        try:
            messages = await asyncio.to_thread(self._client.messages, worker_id, POLL_WAIT_SECONDS)
        except SimulatorError as error:
            if error.status == NOT_FOUND and self._worker_id == worker_id:  # the simulator forgot us
                self._worker_id = None
                self._jobs.clear()
            self._connected = error.status == NOT_FOUND
            if error.status != NOT_FOUND:
                log.warning("simulator unreachable: %s", error.message)
                await self._pause(1.0)
            return
        self._connected = True
        for message in messages:
            await self._handle(message)

    async def _handle(self, message: WorkerMessage) -> None:
        if isinstance(message, JobAssignment):
            await self._job_assigned(message)
        elif isinstance(message, JobTermination):
            await self._job_terminated(message)

    async def _job_assigned(self, job: JobAssignment) -> None:
        if self._budget.take():
            self._budget.settled(started=True)
        else:
            log.warning("job %s beyond JOBS_PER_TASK: the simulator gave it anyway, so it runs", job.job_id)
        self._jobs[job.job_id] = (job.room, job.dispatch_id, time.monotonic())
        log.info(
            "job %s for room %s (%d of %d)", job.job_id, job.room, self._budget.taken, self._budget.limit
        )
        report = JobStarted(
            task_arn=self._settings.task_arn,
            room=job.room,
            room_sid=job.room_sid,
            job_id=job.job_id,
            dispatch_id=job.dispatch_id,
        )
        await asyncio.to_thread(self._reports.send, report)

    async def _job_terminated(self, end: JobTermination) -> None:
        room, _, started = self._jobs.pop(end.job_id, (end.room, "", time.monotonic()))
        log.info("job %s in room %s ended: %s", end.job_id, room, end.reason)
        report = JobEnded(
            task_arn=self._settings.task_arn,
            room=room,
            job_id=end.job_id,
            outcome=JobOutcome.SUCCESS,
            duration_seconds=round(time.monotonic() - started, 3),
        )
        await asyncio.to_thread(self._reports.send, report)
        if (self._draining or self._budget.spent) and not self._jobs:
            await self._unregister()  # at once, so no job lands on a worker about to exit

    async def _unregister(self) -> None:
        worker_id, self._worker_id = self._worker_id, None
        if worker_id is None:
            return
        with contextlib.suppress(SimulatorError):
            await asyncio.to_thread(self._client.unregister_worker, worker_id)
        log.info("unregistered from the simulator")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)


async def serve(settings: SimWorkerSettings) -> int:
    clock = SystemClock()
    sqs = boto3.client("sqs")
    lifecycle = WorkerLifecycle(
        clock=clock,
        unreachable_limit=settings.livekit_unreachable_exit_seconds,
        drain_timeout=settings.drain_timeout_seconds,
    )
    budget = JobBudget(settings.jobs_per_task)
    worker = SimulatorWorker(
        SimulatorClient(settings.simulator_url),
        settings,
        SqsJobReports(sqs, settings.timer_queue_url),
        budget,
    )
    runtime = WorkerRuntime(
        worker=worker,
        record=DynamoWorkerRecord(
            boto3.client("dynamodb"),
            settings.table_name,
            task_arn=settings.task_arn,
            task_role_id=settings.agent_task_role_id,
            capacity=settings.slots_per_task,
            launched_for=settings.launched_for_room,
        ),
        ready_signal=SqsReadySignal(
            sqs, settings.timer_queue_url, task_arn=settings.task_arn, room=settings.launched_for_room
        ),
        lifecycle=lifecycle,
        clock=clock,
        heartbeat_seconds=settings.heartbeat_seconds,
        budget=budget,
        tick_seconds=0.2,
    )
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, runtime.terminate)
    watchdog = asyncio.create_task(_exit_with_parent(settings.local_stack_pid, runtime.terminate))
    try:
        return await runtime.run()
    finally:
        watchdog.cancel()


async def _exit_with_parent(parent: int | None, terminate: Callable[[], None]) -> None:
    """A stack that died without stopping its tasks leaves no worker behind for long."""
    if parent is None:
        return
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the local stack that started this task is gone: stopping")
    terminate()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = SimWorkerSettings()
    try:
        code = asyncio.run(serve(settings))
    except Exception:
        log.exception("worker failed")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
