"""The worker's async driver: runs the LiveKit worker, heartbeats its record, signals ready,
and carries out what :class:`~agent_worker.lifecycle.WorkerLifecycle` decides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from agent_worker.clock import Clock
from agent_worker.job_budget import JobBudget
from agent_worker.lifecycle import Drain, Exit, WorkerLifecycle
from control_plane.worker_protocol import WorkerStatus

log = logging.getLogger(__name__)


class LiveKitWorkerPort(Protocol):
    async def run(self) -> None: ...

    async def drain(self) -> None: ...

    async def aclose(self) -> None: ...

    def jobs(self) -> dict[str, str]: ...

    def connected(self) -> bool: ...

    def on_registered(self, callback: Callable[[], None]) -> None: ...


class WorkerRecordPort(Protocol):
    def write(self, status: WorkerStatus, jobs: dict[str, str], now: float) -> str | None:
        """Returns why the control plane wants this worker to drain, or None."""
        ...


class ReadySignalPort(Protocol):
    def send(self) -> None: ...


class WorkerRuntime:
    def __init__(
        self,
        *,
        worker: LiveKitWorkerPort,
        record: WorkerRecordPort,
        ready_signal: ReadySignalPort,
        lifecycle: WorkerLifecycle,
        clock: Clock,
        heartbeat_seconds: float,
        budget: JobBudget | None = None,
        tick_seconds: float = 1.0,
    ) -> None:
        """``budget``: the jobs the worker takes in its life, shared with its job request handler;
        None for a worker that keeps no such count."""
        self._worker = worker
        self._record = record
        self._ready_signal = ready_signal
        self._lifecycle = lifecycle
        self._clock = clock
        self._heartbeat_seconds = heartbeat_seconds
        self._budget = budget
        self._tick_seconds = tick_seconds
        self._wake = asyncio.Event()
        self._registered = False
        self._next_heartbeat = float("-inf")
        self._written_status: WorkerStatus | None = None
        self._serving: asyncio.Task[None] | None = None
        self._draining: asyncio.Task[None] | None = None
        worker.on_registered(self._on_registered)

    def terminate(self) -> None:
        """SIGTERM handler: drain within the drain timeout, then exit."""
        log.info("SIGTERM received: draining", extra={"at": self._clock.now()})
        self._lifecycle.terminate_requested()
        self._wake.set()

    async def run(self) -> int:
        """Serve until the lifecycle says exit; returns the process exit code."""
        self._serving = asyncio.create_task(self._worker.run(), name="livekit_worker")
        while True:
            code = await self.tick()
            if code is not None:
                return code
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick_seconds)

    async def tick(self) -> int | None:
        """Observe, decide, act once; returns the exit code once the worker has stopped."""
        if self._serving is not None and self._serving.done():
            self._lifecycle.worker_failed(_describe_end(self._serving))
        self._lifecycle.livekit_connection(self._worker.connected())
        if self._budget is not None:
            busy = self._budget.settling or bool(self._worker.jobs())
            self._lifecycle.jobs_seen(spent=self._budget.spent, busy=busy)
        step = self._lifecycle.next_step()
        if isinstance(step, Exit):
            return await self._exit(step)
        if isinstance(step, Drain):
            log.info(
                "draining",
                extra={"reason": step.reason, "at": self._clock.now(), "jobs": self._worker.jobs()},
            )
            self._draining = asyncio.create_task(self._drain(), name="drain")
        if self._registered:
            self._registered = not await self._announce_ready()
        elif self._clock.now() >= self._next_heartbeat or self._status() is not self._written_status:
            await self._heartbeat()
        return None

    def _on_registered(self) -> None:
        self._registered = True
        self._wake.set()

    async def _announce_ready(self) -> bool:
        """Record first, then the message: the control plane reads the record when woken.
        False while the record could not be written (retried on the next tick)."""
        if not await self._heartbeat():
            return False
        if self._written_status is not WorkerStatus.READY:
            return True  # draining, or already disconnected again: nothing to announce
        try:
            await asyncio.to_thread(self._ready_signal.send)
        except Exception:
            log.exception("could not send the worker-ready signal; the sweep will find this worker")
            return True
        log.info("worker ready", extra={"at": self._clock.now(), "jobs": self._worker.jobs()})
        return True

    async def _heartbeat(self) -> bool:
        now = self._clock.now()
        status = self._status()
        self._next_heartbeat = now + self._heartbeat_seconds
        try:
            drain_reason = await asyncio.to_thread(self._record.write, status, self._worker.jobs(), now)
        except Exception:
            log.exception("heartbeat failed; retrying at the next one")
            return False
        self._written_status = status
        if drain_reason is not None and not self._lifecycle.draining:
            log.info("drain requested", extra={"reason": drain_reason, "at": now})
            self._lifecycle.drain_requested(drain_reason)
            self._wake.set()
        return True

    def _status(self) -> WorkerStatus:
        if self._lifecycle.draining:
            return WorkerStatus.DRAINING
        return WorkerStatus.READY if self._worker.connected() else WorkerStatus.STARTING

    async def _drain(self) -> None:
        await self._worker.drain()
        self._lifecycle.drain_finished()
        self._wake.set()

    async def _exit(self, step: Exit) -> int:
        log_exit = log.info if step.code == 0 else log.error
        log_exit("worker exiting", extra={"reason": step.reason, "code": step.code, "at": self._clock.now()})
        if self._draining is not None:  # the drain holds the server's lock that aclose() needs
            self._draining.cancel()
            await asyncio.gather(self._draining, return_exceptions=True)
        await self._worker.aclose()
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)
        try:
            await asyncio.to_thread(self._record.write, WorkerStatus.STOPPED, {}, self._clock.now())
        except Exception:
            log.exception("could not record the stop; ECS task events will")
        return step.code


def _describe_end(serving: asyncio.Task[None]) -> str:
    if serving.cancelled():
        return "the LiveKit worker was cancelled"
    error = serving.exception()
    return f"the LiveKit worker stopped: {error!r}" if error else "the LiveKit worker stopped"
