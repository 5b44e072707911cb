"""When a worker keeps serving, drains, or exits: decisions only, fed by observations.

The async driver (:mod:`agent_worker.runtime`) reports what it sees and acts on
:meth:`WorkerLifecycle.next_step`; keeping the rules here lets tests walk them on a
virtual clock.

- The control plane asks for a drain (``draining`` on the record, or the record already
  says stopped): drain with no deadline, since each job ends on its own grace timer or age
  cap, then exit 0.
- Recycled: the worker has taken its ``JOBS_PER_TASK`` jobs and they have all ended: drain
  (nothing is left to wait for) and exit 0, so the next room gets a fresh process and the pool
  launches the replacement. Until then it declines new jobs but keeps serving its own.
- SIGTERM (ECS ``StopTask``, scale-in, Spot reclaim): drain, but exit 0 after
  ``drain_timeout`` even with jobs left, so ECS never has to SIGKILL us at ``stopTimeout``.
- LiveKit out of reach for ``unreachable_limit`` seconds, counted from boot or from the
  last moment we were registered: exit 1, so ECS reports a failed task and the control plane
  replaces it.
- The LiveKit worker itself stopped on its own: exit 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent_worker.clock import Clock

log = logging.getLogger(__name__)

RECYCLED = "recycled: took its JOBS_PER_TASK jobs and they have ended"


@dataclass(frozen=True)
class Serve:
    """Nothing to do."""


@dataclass(frozen=True)
class Drain:
    """Stop taking jobs and wait for the running ones to end."""

    reason: str


@dataclass(frozen=True)
class Exit:
    code: int
    reason: str


Step = Serve | Drain | Exit


class WorkerLifecycle:
    def __init__(self, *, clock: Clock, unreachable_limit: float, drain_timeout: float) -> None:
        self._clock = clock
        self._unreachable_limit = unreachable_limit
        self._drain_timeout = drain_timeout
        self._unreachable_since: float | None = clock.now()
        self._drain_reason: str | None = None
        self._drain_started = False
        self._drained = False
        self._terminated_at: float | None = None
        self._failure: str | None = None
        self._exit: Exit | None = None

    @property
    def draining(self) -> bool:
        return self._drain_reason is not None

    def livekit_connection(self, connected: bool) -> None:
        now = self._clock.now()
        if connected and self._unreachable_since is not None:
            self._unreachable_since = None
        elif not connected and self._unreachable_since is None:
            self._unreachable_since = now
            log.warning("lost the connection to LiveKit", extra={"at": now})

    def jobs_seen(self, *, spent: bool, busy: bool) -> None:
        """``spent``: the worker has taken every job it will take; ``busy``: one of them is
        running or about to. Spent and idle is the end of this task's life."""
        if spent and not busy:
            self.drain_requested(RECYCLED)

    def drain_requested(self, reason: str) -> None:
        if self._drain_reason is None:
            self._drain_reason = reason

    def terminate_requested(self) -> None:
        """SIGTERM: drain, bounded by the drain timeout."""
        if self._terminated_at is None:
            self._terminated_at = self._clock.now()
            self.drain_requested("SIGTERM")

    def drain_finished(self) -> None:
        self._drained = True

    def worker_failed(self, reason: str) -> None:
        self._failure = reason

    def next_step(self) -> Step:
        if self._exit is None:
            step = self._decide(self._clock.now())
            if isinstance(step, Exit):
                self._exit = step
            return step
        return self._exit

    def _decide(self, now: float) -> Step:
        if self._failure is not None:
            return Exit(1, self._failure)
        if self._unreachable_since is not None and now - self._unreachable_since >= self._unreachable_limit:
            return Exit(1, f"LiveKit unreachable for {now - self._unreachable_since:.0f}s")
        if self._drained:
            return Exit(0, f"drained ({self._drain_reason})")
        if self._terminated_at is not None and now - self._terminated_at >= self._drain_timeout:
            return Exit(0, f"drain timed out after {self._drain_timeout:g}s (SIGTERM)")
        if self._drain_reason is not None and not self._drain_started:
            self._drain_started = True
            return Drain(self._drain_reason)
        return Serve()
