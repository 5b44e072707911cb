"""Stand-ins for time and for LiveKit, the edges the agent worker's tests replace."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.protocol import agent, models

from agent_worker import session
from agent_worker.settings import AgentSettings
from control_plane.worker_protocol import JobEnded, JobStarted

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/agents/0123456789abcdef"


class VirtualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock and a scheduler in one: time moves only when a test calls :meth:`advance`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, VirtualTimer, Callable[[], object]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], object], /) -> VirtualTimer:
        timer = VirtualTimer()
        heapq.heappush(self._queue, (self._now + delay, next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running each timer that falls due at its own moment."""
        until = self._now + seconds
        while self._queue and self._queue[0][0] <= until:
            due, _, timer, callback = heapq.heappop(self._queue)
            self._now = due
            if not timer.cancelled:
                callback()
        self._now = until


STANDARD, EGRESS, SIP, AGENT = 0, 2, 3, 4


@dataclass
class FakeParticipant:
    sid: str
    identity: str
    kind: int = STANDARD


@dataclass
class FakeRoom:
    """Emits ``participant_connected`` / ``participant_disconnected`` like ``rtc.Room``."""

    remote_participants: dict[str, FakeParticipant] = field(default_factory=dict)
    handlers: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)

    def on(self, event: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        self.handlers.setdefault(event, []).append(callback)
        return callback

    def join(self, participant: FakeParticipant) -> None:
        self.remote_participants[participant.identity] = participant
        for handler in self.handlers.get("participant_connected", []):
            handler(participant)

    def leave(self, participant: FakeParticipant) -> None:
        self.remote_participants.pop(participant.identity, None)
        for handler in self.handlers.get("participant_disconnected", []):
            handler(participant)


ACCEPTED = "accepted"
DECLINED = "declined, offered to another worker"
REJECTED = "rejected, job ends"


class JobOffer:
    """What LiveKit's job request looks like to the request handler: a job for a room, accept,
    reject. ``assigned`` (if given) is awaited inside ``accept``, as livekit-agents waits for
    LiveKit's assignment there; ``on_accept`` runs once the job would be running."""

    def __init__(
        self,
        room: str,
        *,
        assigned: Callable[[], Awaitable[None]] | None = None,
        on_accept: Callable[[JobOffer], None] | None = None,
    ) -> None:
        self.id = f"AJ_{room}"
        self.room = SimpleNamespace(name=room, sid=f"RM_{room}")
        self.answer: str | None = None
        self.identity: str | None = None
        self._assigned = assigned
        self._on_accept = on_accept

    async def accept(self, *, identity: str = "") -> None:
        self.answer = ACCEPTED
        self.identity = identity or f"agent-{self.id}"  # LiveKit's default without one
        if self._assigned is not None:
            await self._assigned()
        if self._on_accept is not None:
            self._on_accept(self)

    async def reject(self, *, terminate: bool = True) -> None:
        self.answer = REJECTED if terminate else DECLINED


class FakeLiveKitWorker:
    """The LiveKit side of the worker: registration, jobs, drain and close, all by hand."""

    def __init__(self) -> None:
        self.running_jobs: dict[str, str] = {}
        self.is_connected = False
        self.drain_started = False
        self.closed = False
        self.crash: BaseException | None = None
        self._registered: Callable[[], None] | None = None
        self._jobs_done = asyncio.Event()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await self._stop.wait()
        if self.crash is not None:
            raise self.crash

    async def drain(self) -> None:
        self.drain_started = True
        if self.running_jobs:
            await self._jobs_done.wait()

    async def aclose(self) -> None:
        self.closed = True
        self.running_jobs.clear()
        self._stop.set()

    def jobs(self) -> dict[str, str]:
        return dict(self.running_jobs)

    def connected(self) -> bool:
        return self.is_connected

    def on_registered(self, callback: Callable[[], None]) -> None:
        self._registered = callback

    # --- what LiveKit does, driven by the test ----------------------------------------------

    def register(self) -> None:
        self.is_connected = True
        assert self._registered is not None
        self._registered()

    def disconnect(self) -> None:
        self.is_connected = False

    async def offer(self, room: str, on_request: Callable[[Any], Awaitable[None]]) -> str | None:
        """LiveKit offers this worker ``room``'s job through its request handler; an accepted
        job runs until the test finishes it."""

        def running(offer: JobOffer) -> None:
            self.running_jobs[room] = offer.id

        offer = JobOffer(room, on_accept=running)
        await on_request(offer)
        return offer.answer

    def finish_job(self, room: str) -> None:
        self.running_jobs.pop(room)
        if not self.running_jobs:
            self._jobs_done.set()

    def finish_all_jobs(self) -> None:
        self.running_jobs.clear()
        self._jobs_done.set()

    def fail(self, error: BaseException) -> None:
        self.crash = error
        self._stop.set()


def agent_settings(**overrides: object) -> AgentSettings:
    """Valid settings for a worker in tests (dummy keys), with ``overrides`` applied."""
    values: dict[str, object] = {
        "livekit_url": "ws://127.0.0.1:7880",
        "livekit_api_key": "devkey",
        "livekit_api_secret": "devsecret-devsecret-devsecret-00",
        "deepgram_api_key": "dg-dummy",
        "llm_api_key": "sk-dummy",
        "timer_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/timers",
        "agent_task_role_id": "AROAEXAMPLEAGENTROLE1",
        **overrides,
    }
    return AgentSettings.model_validate(values)


class RecordingSink:
    """The timer queue, as the job's reports see it."""

    def __init__(self) -> None:
        self.sent: list[JobStarted | JobEnded] = []

    def send(self, message: JobStarted | JobEnded) -> None:
        self.sent.append(message)


class BrokenSink:
    def send(self, message: JobStarted | JobEnded) -> None:
        raise ConnectionError("sqs unreachable")


class FakeJobProcess:
    """A job process nothing was prepared in (``session.prepare_process`` not run)."""

    def __init__(self) -> None:
        self.userdata: dict[str, object] = {}


class FakeJobContext:
    """The part of ``JobContext`` the entrypoint uses, around a real LiveKit job message;
    ``connect`` raises ``error`` if given."""

    def __init__(
        self, error: BaseException | None = None, *, room_sid: str = "RM_standup", dispatch_id: str = ""
    ) -> None:
        self.job = agent.Job(
            id="AJ_1", dispatch_id=dispatch_id, room=models.Room(name="standup", sid=room_sid)
        )
        self.error = error
        self.proc = FakeJobProcess()
        self.connected = False
        self.shutdowns: list[str] = []
        self.callbacks: list[Callable[[str], Awaitable[None]]] = []

    async def connect(self) -> None:
        if self.error is not None:
            raise self.error
        self.connected = True

    def add_shutdown_callback(self, callback: Callable[[str], Awaitable[None]]) -> None:
        self.callbacks.append(callback)

    def shutdown(self, reason: str = "user requested") -> None:
        self.shutdowns.append(reason)

    async def run_shutdown_callbacks(self) -> None:
        for callback in self.callbacks:
            await callback(self.shutdowns[-1])


def capture_job_reports(monkeypatch: pytest.MonkeyPatch) -> RecordingSink:
    """Run the real ``session.entrypoint`` and ``session.job_report`` with the timer queue
    replaced by a :class:`RecordingSink` (returned) and the task's ARN set to ``TASK_ARN``."""
    sink = RecordingSink()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(session, "load_settings", functools.partial(agent_settings, task_arn=TASK_ARN))
    monkeypatch.setattr(session, "SqsJobReports", lambda client, queue_url: sink)
    return sink
