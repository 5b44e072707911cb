"""The whole LiveKit simulator behind one start/stop, on one port.

``LiveKitSimulator`` serves LiveKit's Twirp RoomService and AgentDispatchService (what the
control plane's ``LiveKitApiGateway`` calls, with grants checked), the control endpoint and the
worker API (``/sim/...``, see ``http.py``), and posts signed webhooks to ``webhook_url``. Rooms
close on LiveKit's timeouts: with the wall clock a driver checks every ``tick_seconds``; with an
injected clock time moves only when the test moves it and calls ``tick()``.

    with LiveKitSimulator(api_key="devkey", api_secret=secret, webhook_url=url) as sim:
        LiveKitApiGateway(sim.url, ...)            # the control plane's view
        SimulatorClient(sim.url).join("standup", "alice")
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from types import TracebackType

from aiohttp import web

from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.ports import Clock
from local.livekit_sim.http import ControlApi, WorkerApi, errors_as_json
from local.livekit_sim.models import SimState, WebhookFaults
from local.livekit_sim.server import BackgroundServer
from local.livekit_sim.twirp import TwirpService
from local.livekit_sim.webhooks import DeliveryPolicy, WebhookSender
from local.livekit_sim.world import SimulatedLiveKit

LIVEKIT_CHECK_SECONDS = 1.0  # LiveKit's server checks for idle rooms every second


class _WallClock:
    def now(self) -> float:
        return time.time()


class LiveKitSimulator:
    """``state`` is the in-memory twin it serves, ``world`` the simulated server (the control and
    worker operations, in-process), ``webhooks`` the delivery and its record, ``twirp`` the
    requests counted and the tokens refused. ``seed`` makes worker choice repeatable; webhook
    faults carry their own."""

    def __init__(
        self,
        *,
        api_key: str = "devkey",
        api_secret: str | None = None,
        webhook_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seed: int | None = None,
        delivery: DeliveryPolicy | None = None,
        faults: WebhookFaults | None = None,
        tick_seconds: float = LIVEKIT_CHECK_SECONDS,
        room_defaults: tuple[int, int] = (0, 0),
    ) -> None:
        self._clock: Clock = clock or _WallClock()
        self._drive_clock = clock is None
        self._tick_seconds = tick_seconds
        self._server = BackgroundServer("livekit-simulator", host, port)
        self.state = InMemoryLiveKit(self._clock)
        secret = api_secret or secrets.token_urlsafe(32)
        self.webhooks = WebhookSender(webhook_url, api_key, secret, delivery, faults)
        self.world = SimulatedLiveKit(
            self.state,
            self._clock,
            on_event=self.webhooks.submit,
            on_message=self._wake_worker,
            seed=seed,
            room_defaults=room_defaults,
        )
        self.twirp = TwirpService(self.world, api_key, secret)
        self._workers: WorkerApi | None = None

    @property
    def url(self) -> str:
        """Where the Twirp services and ``/sim`` answer: the ``LIVEKIT_URL`` of the control plane."""
        return self._server.url

    @property
    def api_key(self) -> str:
        return self.twirp.api_key

    @property
    def api_secret(self) -> str:
        return self.twirp.api_secret

    def tick(self) -> list[str]:
        """Close the rooms whose timeout has run out by the clock; returns their names."""
        return self.world.tick()

    def snapshot(self) -> SimState:
        return SimState(
            now=self._clock.now(),
            rooms=self.world.rooms(),
            workers=self.world.workers(),
            webhooks=self.webhooks.stats(),
        )

    def set_down(self, down: bool) -> None:
        """While down every Twirp call answers 503; rooms, webhooks and workers carry on."""
        self.state.set_down(down)

    def start(self) -> LiveKitSimulator:
        app = web.Application(middlewares=[errors_as_json])
        self.twirp.add_routes(app)
        ControlApi(self.world, self.webhooks, self.snapshot).add_routes(app)
        self._workers = WorkerApi(self.world)
        self._workers.add_routes(app)
        app.cleanup_ctx.append(self._background)
        self._server.start(app)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LiveKitSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _background(self, _app: web.Application) -> AsyncIterator[None]:
        await self.webhooks.start()
        clock = asyncio.create_task(self._drive()) if self._drive_clock else None
        yield
        if clock is not None:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
        await self.webhooks.close()

    def _wake_worker(self, worker_id: str) -> None:
        """From any thread: a poll waiting for ``worker_id``'s messages looks again."""
        workers = self._workers
        if workers is not None:
            self._server.call_soon(lambda: workers.wake(worker_id))

    async def _drive(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            self.world.tick()
