"""The agent-side half of the grace period: a job leaves a room nobody human is in.

The control plane runs the primary timer and ends the job (it deletes the dispatch). This
copy is the failsafe: it runs inside the job so the agent still leaves, and stops billing, when
the control plane is down or its messages are lost. It starts at the RTC disconnect, before
the control plane has seen the webhook, so the job runs it for longer than the control plane's
grace (``AgentSettings.job_grace_seconds``): a human who returns just before the control
plane's deadline finds the agent still there. Humans are counted by participant sid
with the control plane's own rule (:func:`control_plane.humans.is_human`): a page refresh
joins a new sid before the old one leaves, so it never looks like an empty room.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent_worker.clock import Clock, Scheduler, TimerHandle
from control_plane.humans import is_human

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Participant:
    sid: str
    identity: str
    kind: int | str | None


class RoomPresence:
    """Starts the grace timer when the last human leaves, cancels it on a rejoin, and ends the
    job (``shutdown(reason)``) when it expires or when the job has run for ``max_age_seconds``."""

    def __init__(
        self,
        *,
        room: str,
        job_id: str,
        grace_seconds: float,
        max_age_seconds: float,
        clock: Clock,
        scheduler: Scheduler,
        shutdown: Callable[[str], None],
    ) -> None:
        self._room = room
        self._job_id = job_id
        self._grace_seconds = grace_seconds
        self._max_age_seconds = max_age_seconds
        self._clock = clock
        self._scheduler = scheduler
        self._shutdown = shutdown
        self._humans: dict[str, str] = {}
        self._grace_timer: TimerHandle | None = None
        self._age_timer: TimerHandle | None = None
        self.ended_reason: str | None = None

    @property
    def humans(self) -> int:
        return len(self._humans)

    @property
    def in_grace(self) -> bool:
        return self._grace_timer is not None

    def start(self, present: Iterable[Participant]) -> None:
        """Begin with whoever is in the room already; an empty room starts the grace at once."""
        for participant in present:
            if is_human(participant.kind):
                self._humans[participant.sid] = participant.identity
        self._age_timer = self._scheduler.call_later(self._max_age_seconds, self._max_age_reached)
        self._log("job started", max_age_seconds=self._max_age_seconds)
        if not self._humans:
            self._start_grace("no human in the room when the job started")

    def participant_joined(self, participant: Participant) -> None:
        if self.ended_reason is not None or not is_human(participant.kind):
            return
        self._humans[participant.sid] = participant.identity
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
            self._log("human rejoined: grace cancelled", identity=participant.identity)
        else:
            self._log("human joined", identity=participant.identity)

    def participant_left(self, sid: str) -> None:
        identity = self._humans.pop(sid, None)
        if self.ended_reason is not None or identity is None:
            return
        if self._humans:
            self._log("human left", identity=identity)
        else:
            self._start_grace(f"last human left ({identity})")

    def end(self, reason: str) -> None:
        """End the job: once, whatever asks first (grace, age cap, a closed session)."""
        if self._finish(reason):
            self._shutdown(reason)

    def job_ended(self, reason: str) -> None:
        """The job is ending for a reason of its own (dispatch deleted, room closed): stop the timers."""
        self._finish(reason)

    def _finish(self, reason: str) -> bool:
        if self.ended_reason is not None:
            return False
        self.ended_reason = reason
        for timer in (self._grace_timer, self._age_timer):
            if timer is not None:
                timer.cancel()
        self._grace_timer = self._age_timer = None
        self._log("job ending", reason=reason)
        return True

    def _start_grace(self, why: str) -> None:
        self._grace_timer = self._scheduler.call_later(self._grace_seconds, self._grace_expired)
        self._log(f"{why}: grace started", deadline=self._clock.now() + self._grace_seconds)

    def _grace_expired(self) -> None:
        self._grace_timer = None
        self.end(f"no human in the room for {self._grace_seconds:g}s")

    def _max_age_reached(self) -> None:
        self._age_timer = None
        self.end(f"job reached its maximum age of {self._max_age_seconds:g}s")

    def _log(self, message: str, **fields: object) -> None:
        log.info(
            message,
            extra={
                "room": self._room,
                "job_id": self._job_id,
                "at": self._clock.now(),
                "humans": self.humans,
                **fields,
            },
        )
