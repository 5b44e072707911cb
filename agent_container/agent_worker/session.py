"""What each job runs: an ``AgentSession`` (Deepgram STT and TTS, the configured LLM), or the
keyless echo (``AGENT_PIPELINE=echo``, :mod:`agent_worker.echo`), plus
the room-presence watch that ends the job when the humans are gone, and the job's reports of
its start and how it ended (:mod:`agent_worker.job_report`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import boto3
from livekit.agents import NOT_GIVEN, Agent, AgentSession, JobContext, JobProcess, inference, llm, room_io
from livekit.agents.voice.events import CloseEvent
from livekit.plugins import deepgram, openai
from livekit.protocol import agent

from agent_worker.clock import Clock, Scheduler, SystemClock
from agent_worker.echo import serve_echo
from agent_worker.ecs_metadata import TaskArnUnknown, resolve_task_arn
from agent_worker.job_report import JobReport, close_failure, run_job
from agent_worker.presence import Participant, RoomPresence
from agent_worker.registry import SqsJobReports
from agent_worker.settings import AgentPipeline, AgentSettings, LLMProvider, load_settings

log = logging.getLogger(__name__)


class RemoteParticipantLike(Protocol):
    @property
    def sid(self) -> str: ...

    @property
    def identity(self) -> str: ...

    @property
    def kind(self) -> int: ...


class RoomEventSource(Protocol):
    """The part of ``rtc.Room`` the presence watch uses (a fake one drives the tests)."""

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipantLike]: ...

    def on(self, event: Any, callback: Callable[..., Any]) -> Any: ...


def build_llm(settings: AgentSettings) -> llm.LLM[Any]:
    if settings.llm_provider is LLMProvider.LIVEKIT:
        return inference.LLM(
            settings.llm_model,
            api_key=settings.livekit_api_key.get_secret_value(),
            api_secret=settings.livekit_api_secret.get_secret_value(),
        )
    assert settings.llm_api_key is not None  # enforced by AgentSettings
    return openai.LLM(
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        base_url=settings.llm_base_url or NOT_GIVEN,
    )


def build_session(settings: AgentSettings) -> AgentSession[None]:
    """STT, LLM and TTS; VAD and turn detection are livekit-agents' built-in local models."""
    assert settings.deepgram_api_key is not None  # enforced by AgentSettings
    deepgram_key = settings.deepgram_api_key.get_secret_value()
    stt_url = {"base_url": settings.deepgram_stt_url} if settings.deepgram_stt_url else {}
    return AgentSession(
        stt=deepgram.STT(
            model=settings.deepgram_stt_model,
            language=settings.agent_language,
            api_key=deepgram_key,
            **stt_url,
        ),
        tts=deepgram.TTS(model=settings.deepgram_tts_model, api_key=deepgram_key),
        llm=build_llm(settings),
    )


ROOM_OPTIONS = room_io.RoomOptions(close_on_disconnect=False)
"""Keep the session when the person it listens to leaves: a rejoin within the grace period
finds the agent still talking, and :class:`RoomPresence` decides when the job ends."""


def job_presence(
    settings: AgentSettings,
    *,
    room: str,
    job_id: str,
    clock: Clock,
    scheduler: Scheduler,
    shutdown: Callable[[str], None],
) -> RoomPresence:
    """The job's presence watch, on the job's own grace (``job_grace_seconds``): longer than
    the control plane's, so the control plane always acts first and this only catches what it
    missed."""
    return RoomPresence(
        room=room,
        job_id=job_id,
        grace_seconds=settings.job_grace_seconds,
        max_age_seconds=settings.max_agent_age_seconds,
        clock=clock,
        scheduler=scheduler,
        shutdown=shutdown,
    )


def watch_room(room: RoomEventSource, presence: RoomPresence) -> None:
    """Feed joins and leaves to ``presence``; subscribe before reading who is there, so no
    join falls in between."""

    def joined(participant: RemoteParticipantLike) -> None:
        presence.participant_joined(Participant(participant.sid, participant.identity, participant.kind))

    def left(participant: RemoteParticipantLike) -> None:
        presence.participant_left(participant.sid)

    room.on("participant_connected", joined)
    room.on("participant_disconnected", left)
    presence.start([Participant(p.sid, p.identity, p.kind) for p in room.remote_participants.values()])


def on_session_closed(event: CloseEvent, presence: RoomPresence, report: JobReport) -> None:
    """A closed session leaves a silent agent in the room: end the job so the control plane
    sees it, and record why if it closed on an error (a speech or LLM provider gave up)."""
    failure = close_failure(event)
    if failure is not None:
        reason, cause = failure
        report.failed(reason, f"agent session closed on {type(event.error).__name__}", cause)
    presence.end(f"agent session closed ({event.reason.value})")


PREPARED_SETTINGS = "agent_settings"
PREPARED_SQS = "sqs_client"


def prepare_process(proc: JobProcess) -> None:
    """livekit-agents runs this in each idle job process before it is given a job: what every
    job needs and takes CPU to build (the settings; the SQS client, a few hundred ms of Python)
    is ready when a human is waiting, instead of contending with the room connection."""
    try:
        proc.userdata[PREPARED_SETTINGS] = load_settings()
        proc.userdata[PREPARED_SQS] = boto3.client("sqs")
    except Exception:  # a process that cannot prepare must still start: the job builds them itself
        log.warning("job process could not prepare its settings and SQS client", exc_info=True)


async def job_report(settings: AgentSettings, job: agent.Job, sqs: Any = None) -> JobReport:
    """The job's reports, sent on the timer queue; only logged if the task's ARN is unknown.
    Ids LiveKit leaves empty (a job with no dispatch) are reported as None. ``sqs``: the client
    :func:`prepare_process` built, else one is built here."""
    try:
        task_arn: str | None = await resolve_task_arn(
            configured=settings.task_arn, metadata_uri=settings.ecs_container_metadata_uri_v4
        )
    except TaskArnUnknown:
        task_arn = None
    if sqs is None:  # off the loop, where the room connects
        sqs = await asyncio.to_thread(boto3.client, "sqs")
    sink = SqsJobReports(sqs, settings.timer_queue_url)
    return JobReport(
        task_arn=task_arn,
        room=job.room.name,
        room_sid=job.room.sid or None,
        job_id=job.id,
        dispatch_id=job.dispatch_id or None,
        clock=SystemClock(),
        sink=sink,
    )


DISPATCH_STAGES = ("received_at", "accepted_at", "assigned_at", "launched_at")
"""livekit-agents' stamps on a job (``RunningJobInfo``): the job request, our accept, LiveKit's
assignment, a warm process handed the job."""


def log_dispatch_timeline(
    ctx: JobContext, entered_at: float, connecting_at: float, connected_at: float
) -> None:
    """Where a waiting human's time went on this side (unix seconds): livekit-agents' dispatch
    stages, the entrypoint, the room connection begun and made. ``dispatch_latency`` is
    livekit-agents' own ``lk.job.dispatch_latency`` (job request to entrypoint), which it only
    puts on a trace span."""
    info = getattr(ctx, "_info", None)  # livekit-agents keeps the job's RunningJobInfo private
    stamps = {stage: float(getattr(info, stage, 0.0) or 0.0) for stage in DISPATCH_STAGES}
    received = stamps["received_at"]
    log.info(
        "job dispatch timeline",
        extra={
            "room": ctx.job.room.name,
            "job_id": ctx.job.id,
            **{stage: at for stage, at in stamps.items() if at},
            "entrypoint_at": entered_at,
            "connecting_at": connecting_at,
            "connected_at": connected_at,
            **({"dispatch_latency": round(entered_at - received, 3)} if received else {}),
        },
    )


async def connect_timed(ctx: JobContext, entered_at: float) -> None:
    connecting_at = time.time()
    await ctx.connect()
    log_dispatch_timeline(ctx, entered_at, connecting_at, time.time())


async def entrypoint(ctx: JobContext) -> None:
    # the human is waiting for the agent: connect while the job's report is being built
    connecting = asyncio.create_task(connect_timed(ctx, time.time()), name="connect")
    prepared = ctx.proc.userdata
    settings = prepared.get(PREPARED_SETTINGS) or load_settings()
    report = await job_report(settings, ctx.job, prepared.get(PREPARED_SQS))
    # sent beside the job, not before it: the human is waiting for the agent to join
    started = asyncio.create_task(asyncio.to_thread(report.start), name="job_started_report")

    async def report_end(reason: str) -> None:
        await asyncio.gather(started, return_exceptions=True)  # the start goes out first
        await asyncio.to_thread(report.end)

    ctx.add_shutdown_callback(report_end)
    await run_job(lambda: serve_job(ctx, settings, report, connecting), report, ctx.shutdown)


async def serve_job(
    ctx: JobContext, settings: AgentSettings, report: JobReport, connecting: Awaitable[None]
) -> None:
    await connecting
    presence = job_presence(
        settings,
        room=ctx.room.name,
        job_id=ctx.job.id,
        clock=SystemClock(),
        scheduler=asyncio.get_running_loop(),
        shutdown=ctx.shutdown,
    )
    watch_room(ctx.room, presence)

    async def job_ending(reason: str) -> None:
        presence.job_ended(reason)

    ctx.add_shutdown_callback(job_ending)
    if settings.agent_pipeline is AgentPipeline.ECHO:
        echo = await serve_echo(ctx.room)

        async def stop_echo(reason: str) -> None:
            await echo.aclose()

        ctx.add_shutdown_callback(stop_echo)
        return
    session = build_session(settings)

    @session.on("close")
    def session_closed(event: CloseEvent) -> None:
        on_session_closed(event, presence, report)

    await session.start(
        agent=Agent(instructions=settings.agent_instructions), room=ctx.room, room_options=ROOM_OPTIONS
    )
