"""Fixtures for the simulator's tests: a webhook sink, a simulator on virtual time with fast
webhook retries, Twirp through the real ``livekit-api`` client, and a check that no test leaves
a thread behind (a port cannot outlive its server's thread here)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from livekit.api import LiveKitAPI

from control_plane.adapters.memory.runtime import VirtualClock
from local.livekit_sim import DeliveryPolicy, LiveKitSimulator, SimulatorClient
from tests.livekit_sim.sink import WebhookSink

API_KEY = "sim-api-key"
API_SECRET = "sim-api-secret-long-enough-for-hs256-0123456789"
AGENT = "voice-agent"
FAST = DeliveryPolicy(max_age=5.0, retry_wait_min=0.01, retry_wait_max=0.05, request_timeout=2.0, hold=0.2)
T = TypeVar("T")


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while extra := [t for t in threading.enumerate() if t not in before and t.is_alive()]:
        assert time.monotonic() < deadline, f"threads left behind: {extra}"
        time.sleep(0.01)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


@pytest.fixture
def sim(clock: VirtualClock, sink: WebhookSink) -> Iterator[LiveKitSimulator]:
    with LiveKitSimulator(
        api_key=API_KEY, api_secret=API_SECRET, webhook_url=sink.url, clock=clock, seed=7, delivery=FAST
    ) as simulator:
        yield simulator


@pytest.fixture
def client(sim: LiveKitSimulator) -> SimulatorClient:
    return SimulatorClient(sim.url)


def twirp(sim: LiveKitSimulator, call: Callable[[LiveKitAPI], Awaitable[T]], secret: str = API_SECRET) -> T:
    """One call through ``livekit-api``'s own client, as the control plane makes them."""

    async def run() -> T:
        async with LiveKitAPI(sim.url, API_KEY, secret) as api:
            return await call(api)

    return asyncio.run(run())
