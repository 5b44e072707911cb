"""Each job's start and end, told to the control plane, and how it ended, to the logs.

Every job sends one :class:`JobStarted` when it starts (its task, room and room sid, job and
dispatch ids): LiveKit picks the worker, which may not be the one whose slot the control plane
reserved, so this is how the control plane learns which task hosts the room's agent. A lost
start report is logged, never fails the job (the worker's heartbeat lists its jobs too).

Every job sends one :class:`JobEnded` on the timer queue when it ends (its task, room, job id,
outcome, and for a failure a reason from a small fixed set, the exception's type and how long
the job ran): the control plane counts a failure soon after the start toward the room's crash
loop, so a job that can never work (speech provider down, LLM key revoked, an entrypoint that
raises for this room) is retried after a backoff and then given up on, not re-dispatched
forever. A failure is logged once, through the task's rate-limited log handler.

A failing job ends itself cleanly (``shutdown``: the agent leaves the room) and never raises
out of the entrypoint; each job has its own report, so one room's failure never touches
another room's job on the same worker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from livekit.agents.llm import LLMError, RealtimeModelError
from livekit.agents.stt import STTError
from livekit.agents.tts import TTSError
from livekit.agents.voice.events import CloseEvent

from agent_worker.clock import Clock
from control_plane.worker_protocol import JobEnded, JobFailureReason, JobOutcome, JobStarted

log = logging.getLogger(__name__)


class JobReportSink(Protocol):
    def send(self, message: JobStarted | JobEnded) -> None:
        """Deliver the report to the control plane (the timer queue)."""
        ...


def close_failure(event: CloseEvent) -> tuple[JobFailureReason, BaseException | None] | None:
    """Why a closed agent session failed, or None if it closed without an error."""
    error = event.error
    if error is None:
        return None
    cause = error.error if isinstance(error.error, BaseException) else None
    if isinstance(error, STTError | TTSError):
        return JobFailureReason.SPEECH_UNAVAILABLE, cause
    if isinstance(error, LLMError | RealtimeModelError):
        return JobFailureReason.LLM_UNAVAILABLE, cause
    return JobFailureReason.OTHER, cause


class JobReport:
    """One job's start and outcome: the first failure recorded wins; :meth:`end` reports it once."""

    def __init__(
        self,
        *,
        task_arn: str | None,
        room: str,
        job_id: str,
        clock: Clock,
        sink: JobReportSink | None,
        room_sid: str | None = None,
        dispatch_id: str | None = None,
    ) -> None:
        self._task_arn = task_arn
        self._room = room
        self._room_sid = room_sid
        self._job_id = job_id
        self._dispatch_id = dispatch_id
        self._clock = clock
        self._sink = sink
        self._started_at = clock.now()
        self._failure: tuple[JobFailureReason, str | None, str] | None = None
        self.sent: JobEnded | None = None

    def start(self) -> JobStarted | None:
        """Report that this task now hosts the room's agent. Not without the room's sid: the
        control plane ties the report to one session of the room and refuses it without one."""
        if not self._room_sid:
            log.warning("job start not reported: LiveKit gave no room sid", extra={"job_id": self._job_id})
            return None
        message = JobStarted(
            task_arn=self._task_arn or "unknown",
            room=self._room,
            room_sid=self._room_sid,
            job_id=self._job_id,
            dispatch_id=self._dispatch_id,
        )
        self._deliver(message)
        return message

    def failed(self, reason: JobFailureReason, detail: str, error: BaseException | None = None) -> None:
        if self._failure is None:
            self._failure = (reason, type(error).__name__ if error is not None else None, detail)

    def end(self) -> JobEnded | None:
        """Report how the job ended (once; later calls do nothing) and log a failure."""
        if self.sent is not None:
            return None
        duration = max(0.0, self._clock.now() - self._started_at)
        reason, exception_type, detail = self._failure or (None, None, "")
        message = JobEnded(
            task_arn=self._task_arn or "unknown",
            room=self._room,
            job_id=self._job_id,
            outcome=JobOutcome.FAILURE if reason else JobOutcome.SUCCESS,
            reason=reason,
            exception_type=exception_type,
            duration_seconds=round(duration, 3),
        )
        self.sent = message
        if reason is not None:
            log.warning(
                "agent job failed",
                extra={
                    "room": self._room,
                    "job_id": self._job_id,
                    "reason": reason.value,
                    "exception_type": exception_type,
                    "detail": detail,
                    "duration_seconds": message.duration_seconds,
                },
            )
        self._deliver(message)
        return message

    def _deliver(self, message: JobStarted | JobEnded) -> None:
        if self._sink is None or self._task_arn is None:
            return
        try:
            self._sink.send(message)
        except Exception as error:  # logged; the job runs, or ends cleanly, all the same
            log.warning(
                "job report not sent",
                extra={"job_id": self._job_id, "kind": message.kind, "error": type(error).__name__},
            )


async def run_job(
    body: Callable[[], Awaitable[None]], report: JobReport, shutdown: Callable[[str], None]
) -> None:
    """Run the job's body; if it raises, record the failure and end the job cleanly instead."""
    try:
        await body()
    except Exception as error:
        report.failed(JobFailureReason.ENTRYPOINT_ERROR, str(error)[:200], error)
        shutdown(f"job failed: {type(error).__name__}")
