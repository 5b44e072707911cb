"""One start and one stop for the whole simulator: a port while it runs, nothing after."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from livekit.api import CreateRoomRequest

from local.livekit_sim import FakeLiveKitServer, LiveKitSimulator, SimulatorClient
from tests.livekit_sim.conftest import AGENT, API_SECRET, twirp
from tests.livekit_sim.sink import WebhookSink, wait_until


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def refuses(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_stopping_frees_the_port_and_the_thread() -> None:
    with LiveKitSimulator() as sim:
        port = port_of(sim.url)
        assert not refuses(port)
        assert "livekit-simulator" in {t.name for t in threading.enumerate()}
    sim.stop()  # a second stop is harmless

    assert refuses(port)


def test_it_binds_the_port_it_is_given() -> None:
    port = free_port()
    with LiveKitSimulator(port=port) as sim:
        assert sim.url == f"http://127.0.0.1:{port}"
        assert SimulatorClient(sim.url).state().rooms == []


def test_a_port_in_use_fails_the_start_and_leaves_nothing() -> None:
    with LiveKitSimulator() as running, pytest.raises(OSError):
        LiveKitSimulator(port=port_of(running.url)).start()


def test_stopping_answers_a_waiting_long_poll() -> None:
    sim = LiveKitSimulator().start()
    client = SimulatorClient(sim.url)
    worker = client.register_worker(AGENT)
    polled: list[object] = []
    poll = threading.Thread(target=lambda: polled.append(client.messages(worker, wait=30)))
    poll.start()
    time.sleep(0.1)

    started = time.monotonic()
    sim.stop()
    poll.join(timeout=5)

    assert polled == [[]] and time.monotonic() - started < 3


def test_on_the_wall_clock_rooms_close_by_themselves(sink: WebhookSink) -> None:
    with LiveKitSimulator(
        api_key="sim-api-key", api_secret=API_SECRET, webhook_url=sink.url, tick_seconds=0.05
    ) as sim:
        twirp(sim, lambda api: api.room.create_room(CreateRoomRequest(name="standup", departure_timeout=1)))
        SimulatorClient(sim.url).join("standup", "alice")
        SimulatorClient(sim.url).leave("standup", identity="alice")

        wait_until(lambda: sim.state.get_room("standup") is None, timeout=3, what="the room to close")

    assert [kind for kind, _ in sink.events(4)] == [
        "room_started",
        "participant_joined",
        "participant_left",
        "room_finished",
    ]


def test_the_twirp_only_server_starts_and_stops_too() -> None:
    with FakeLiveKitServer() as server:
        port = port_of(server.url)
        assert not refuses(port)

    assert refuses(port)
