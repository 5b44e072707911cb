"""Jobs that fail: each ends itself cleanly, reports how it ended once, and leaves the other
jobs on the same worker alone (the control plane side: tests/unit/test_job_failures.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fakes import (
    TASK_ARN,
    BrokenSink,
    FakeJobContext,
    FakeParticipant,
    FakeRoom,
    RecordingSink,
    VirtualClock,
    agent_settings,
    capture_job_reports,
)
from livekit.agents import APIConnectionError, APIStatusError
from livekit.agents.llm import LLMError
from livekit.agents.stt import STTError
from livekit.agents.voice.events import CloseEvent, CloseReason

from agent_worker import session
from agent_worker.job_report import JobReport, run_job
from agent_worker.session import job_presence, on_session_closed, watch_room
from control_plane.worker_protocol import JobEnded, JobFailureReason, JobOutcome


class Job:
    """A job as the entrypoint builds it: presence watch, report, and the shutdowns it asked for.
    The job's shutdown runs its shutdown callback, which sends the report (as ``entrypoint``)."""

    def __init__(
        self, room: str = "standup", job_id: str = "AJ_1", clock: VirtualClock | None = None
    ) -> None:
        self.clock = clock or VirtualClock()
        self.sink = RecordingSink()
        self.shutdowns: list[str] = []
        self.report = JobReport(task_arn=TASK_ARN, room=room, job_id=job_id, clock=self.clock, sink=self.sink)
        self.room = FakeRoom({"alice": FakeParticipant("PA_alice", "alice")})
        self.presence = job_presence(
            agent_settings(),
            room=room,
            job_id=job_id,
            clock=self.clock,
            scheduler=self.clock,
            shutdown=self.shutdown,
        )
        watch_room(self.room, self.presence)

    def shutdown(self, reason: str) -> None:
        self.shutdowns.append(reason)
        self.report.end()


def speech_unreachable() -> CloseEvent:
    error = STTError(timestamp=0.0, label="deepgram.STT", error=APIConnectionError(), recoverable=False)
    return CloseEvent(error=error, reason=CloseReason.ERROR)


def test_speech_provider_unreachable_ends_the_job_and_reports_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job()
    job.clock.advance(2)

    with caplog.at_level(logging.WARNING, logger="agent_worker.job_report"):
        on_session_closed(speech_unreachable(), job.presence, job.report)

    assert len(job.shutdowns) == 1, "the job ends: the agent leaves the room"
    assert job.sink.sent == [
        JobEnded(
            task_arn=TASK_ARN,
            room="standup",
            job_id="AJ_1",
            outcome=JobOutcome.FAILURE,
            reason=JobFailureReason.SPEECH_UNAVAILABLE,
            exception_type="APIConnectionError",
            duration_seconds=2.0,
        )
    ]
    assert [r.getMessage() for r in caplog.records] == ["agent job failed"]


def test_llm_unavailable_is_told_apart_from_speech() -> None:
    job = Job()
    error = LLMError(
        timestamp=0.0,
        label="openai.LLM",
        error=APIStatusError("key revoked", status_code=401),
        recoverable=False,
    )

    on_session_closed(CloseEvent(error=error, reason=CloseReason.ERROR), job.presence, job.report)

    [sent] = job.sink.sent
    assert (sent.reason, sent.exception_type) == (JobFailureReason.LLM_UNAVAILABLE, "APIStatusError")


def test_entrypoint_raising_ends_the_job_cleanly_and_reports_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job()

    async def body() -> None:
        raise ValueError("room metadata is not JSON")

    with caplog.at_level(logging.WARNING, logger="agent_worker.job_report"):
        asyncio.run(run_job(body, job.report, job.shutdown))  # does not raise
        job.report.end()  # the shutdown callback may run again: reported and logged once

    assert job.shutdowns == ["job failed: ValueError"]
    [sent] = job.sink.sent
    assert (sent.outcome, sent.reason, sent.exception_type) == (
        JobOutcome.FAILURE,
        JobFailureReason.ENTRYPOINT_ERROR,
        "ValueError",
    )
    assert [r.getMessage() for r in caplog.records] == ["agent job failed"]


def test_a_job_failing_in_one_room_does_not_affect_another_rooms_job_on_the_same_worker() -> None:
    clock = VirtualClock()
    failing = Job(room="room-a", job_id="AJ_a", clock=clock)
    healthy = Job(room="room-b", job_id="AJ_b", clock=clock)
    healthy_ran = asyncio.Event()

    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("entrypoint bug")

    async def serve() -> None:
        await asyncio.sleep(0.01)  # still running after the other job failed
        healthy_ran.set()

    async def both() -> None:
        await asyncio.gather(
            run_job(fail, failing.report, failing.shutdown), run_job(serve, healthy.report, healthy.shutdown)
        )

    asyncio.run(both())

    assert failing.shutdowns == ["job failed: RuntimeError"]
    assert healthy_ran.is_set() and healthy.shutdowns == [], "the other job keeps running"
    assert healthy.presence.ended_reason is None
    healthy.room.leave(FakeParticipant("PA_alice", "alice"))
    clock.advance(3600)  # its humans leave: it ends on its own grace, and reports success
    [sent] = healthy.sink.sent
    assert (sent.room, sent.outcome, sent.reason) == ("room-b", JobOutcome.SUCCESS, None)


def test_a_job_that_ends_normally_reports_success_without_logging_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job()
    job.clock.advance(600)

    with caplog.at_level(logging.WARNING, logger="agent_worker.job_report"):
        on_session_closed(CloseEvent(reason=CloseReason.JOB_SHUTDOWN), job.presence, job.report)

    [sent] = job.sink.sent
    assert (sent.outcome, sent.duration_seconds) == (JobOutcome.SUCCESS, 600.0)
    assert caplog.records == []


def test_a_report_that_cannot_be_sent_does_not_break_the_jobs_exit() -> None:
    clock = VirtualClock()
    report = JobReport(task_arn=TASK_ARN, room="standup", job_id="AJ_1", clock=clock, sink=BrokenSink())
    report.failed(JobFailureReason.OTHER, "boom")

    sent = report.end()

    assert sent is not None and sent.outcome is JobOutcome.FAILURE


def test_the_entrypoint_raising_ends_the_job_and_the_shutdown_sends_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = capture_job_reports(monkeypatch)
    ctx = FakeJobContext(ConnectionError("livekit refused"))

    async def job() -> None:
        await session.entrypoint(ctx)  # type: ignore[arg-type]
        await ctx.run_shutdown_callbacks()  # what livekit-agents does after ctx.shutdown

    asyncio.run(job())

    assert ctx.shutdowns == ["job failed: ConnectionError"]
    [_, sent] = sink.sent  # JobStarted, then JobEnded
    assert isinstance(sent, JobEnded)
    assert (sent.task_arn, sent.room, sent.job_id, sent.reason, sent.exception_type) == (
        TASK_ARN,
        "standup",
        "AJ_1",
        JobFailureReason.ENTRYPOINT_ERROR,
        "ConnectionError",
    )
