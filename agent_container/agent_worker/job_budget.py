"""The jobs one worker takes in its life (``JOBS_PER_TASK``), so each room can get a fresh process.

Once they are taken the worker declines every other job (:func:`agent_worker.server.accept_jobs`)
and reports full load; once they have all ended it drains and exits 0
(:meth:`agent_worker.lifecycle.WorkerLifecycle.jobs_seen`), and the pool launches its replacement.
No livekit-agents here, so the runtime and its tests use it as it is.
"""

from __future__ import annotations


class JobBudget:
    """A job counts from the moment it is accepted, before LiveKit assigns it, so two offers that
    arrive together cannot both take the last one; an accept that fails (LiveKit assigned the job
    elsewhere, or it never launched) gives it back."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._taken = 0
        self._settling = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def taken(self) -> int:
        return self._taken

    @property
    def spent(self) -> bool:
        """Every job this worker will take in its life is taken."""
        return self._taken >= self._limit

    @property
    def settling(self) -> bool:
        """An accepted job is not running yet (waiting for LiveKit's assignment or its process)."""
        return self._settling > 0

    def take(self) -> bool:
        """Take one job if any is left; the caller then calls :meth:`settled` once it knows."""
        if self.spent:
            return False
        self._taken += 1
        self._settling += 1
        return True

    def settled(self, *, started: bool) -> None:
        """The accepted job is running (``started``), or it never will and is given back."""
        self._settling -= 1
        if not started:
            self._taken -= 1
