"""Each job tells the control plane it started: LiveKit picks the worker, so this is how the
control plane learns which task hosts a room's agent (the control plane side reads it as
``control_plane.worker_protocol.JobStarted``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import pytest
from fakes import TASK_ARN, BrokenSink, FakeJobContext, capture_job_reports

from agent_worker import session
from agent_worker.job_report import JobReport
from agent_worker.settings import AgentSettings
from control_plane.worker_protocol import JobEnded, JobStarted


def run_job(ctx: FakeJobContext, *, ends: bool = True) -> None:
    """The entrypoint as livekit-agents runs it: the job's body, then (once it ends) its shutdown."""

    async def job() -> None:
        await session.entrypoint(ctx)  # type: ignore[arg-type]
        # livekit-agents keeps the job's loop running once the entrypoint returns
        await asyncio.gather(*(task for task in asyncio.all_tasks() if task is not asyncio.current_task()))
        if ends:
            ctx.shutdown("room closed")
            await ctx.run_shutdown_callbacks()

    asyncio.run(job())


@pytest.fixture
def job_body(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for the agent session (which needs a real room); records the rooms it served."""
    served: list[str] = []

    async def serve_job(
        ctx: FakeJobContext, settings: AgentSettings, report: JobReport, connecting: Awaitable[None]
    ) -> None:
        await connecting
        served.append(ctx.job.room.name)

    monkeypatch.setattr(session, "serve_job", serve_job)
    return served


@pytest.mark.parametrize(("dispatch_id", "reported"), [("AD_abc123", "AD_abc123"), ("", None)])
def test_a_job_reports_its_start_with_the_room_session_job_and_dispatch(
    monkeypatch: pytest.MonkeyPatch, job_body: list[str], dispatch_id: str, reported: str | None
) -> None:
    sink = capture_job_reports(monkeypatch)

    run_job(FakeJobContext(room_sid="RM_s3ss10n", dispatch_id=dispatch_id))

    assert sink.sent[0] == JobStarted(
        task_arn=TASK_ARN, room="standup", room_sid="RM_s3ss10n", job_id="AJ_1", dispatch_id=reported
    )
    assert isinstance(sink.sent[1], JobEnded), "and its end, after the start"
    assert len(sink.sent) == 2


def test_the_start_is_reported_while_the_job_still_runs(
    monkeypatch: pytest.MonkeyPatch, job_body: list[str]
) -> None:
    sink = capture_job_reports(monkeypatch)

    run_job(FakeJobContext(), ends=False)

    assert [type(message) for message in sink.sent] == [JobStarted]


def test_a_start_report_that_cannot_be_sent_is_logged_and_the_job_goes_on(
    monkeypatch: pytest.MonkeyPatch, job_body: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    capture_job_reports(monkeypatch)
    monkeypatch.setattr(session, "SqsJobReports", lambda client, queue_url: BrokenSink())
    ctx = FakeJobContext()

    with caplog.at_level(logging.WARNING, logger="agent_worker.job_report"):
        run_job(ctx, ends=False)

    assert job_body == ["standup"], "the agent joined its room"
    assert ctx.connected
    assert ctx.shutdowns == [], "the job was not ended"
    [warning] = caplog.records
    assert (warning.getMessage(), warning.__dict__["kind"]) == ("job report not sent", "job_started")


def test_a_job_without_its_room_session_sends_no_start_and_runs_all_the_same(
    monkeypatch: pytest.MonkeyPatch, job_body: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The control plane refuses a ``JobStarted`` without ``room_sid``; the job goes on."""
    sink = capture_job_reports(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="agent_worker.job_report"):
        run_job(FakeJobContext(room_sid=""))

    assert job_body == ["standup"]
    assert [type(message) for message in sink.sent] == [JobEnded]
    assert "no room sid" in caplog.text


def test_the_agent_joins_its_room_while_the_jobs_report_is_being_built(
    monkeypatch: pytest.MonkeyPatch, job_body: list[str]
) -> None:
    """The human is waiting: the room connection does not queue behind boto3 (e2e tier: the
    report's SQS client took ~1 s of a warm join on 2 busy cores)."""
    capture_job_reports(monkeypatch)
    ctx = FakeJobContext()
    connected_meanwhile: list[bool] = []
    build_report = session.job_report

    async def slow_report(settings: AgentSettings, job: Any, sqs: Any = None) -> JobReport:
        await asyncio.sleep(0.05)
        connected_meanwhile.append(ctx.connected)
        return await build_report(settings, job, sqs)

    monkeypatch.setattr(session, "job_report", slow_report)

    run_job(ctx)

    assert connected_meanwhile == [True]


def test_a_job_in_a_prepared_process_builds_nothing_while_the_human_waits(
    monkeypatch: pytest.MonkeyPatch, job_body: list[str]
) -> None:
    """livekit-agents runs ``prepare_process`` in each idle job process before it has a job (e2e
    tier: building the SQS client in the job held the agent's connection back ~0.7 s)."""
    sink = capture_job_reports(monkeypatch)
    built: list[str] = []

    def client(service: str) -> object:
        built.append(service)
        return object()

    monkeypatch.setattr(session.boto3, "client", client)
    ctx = FakeJobContext()
    session.prepare_process(ctx.proc)  # type: ignore[arg-type]
    assert built == ["sqs"]

    run_job(ctx)

    assert built == ["sqs"], "the job used the prepared client"
    assert job_body == ["standup"]
    assert isinstance(sink.sent[0], JobStarted)
