"""Rooms close on LiveKit's timeouts, in virtual time: ``departure_timeout`` after the last
participant left once a human was there (agents never keep a room open, but their leaving counts),
``empty_timeout`` after creation when no human ever joined."""

from __future__ import annotations

from livekit.api import CreateRoomRequest

from control_plane.adapters.memory.runtime import VirtualClock
from local.livekit_sim import LiveKitSimulator, ParticipantKind, SimulatorClient
from local.livekit_sim.models import JobTermination
from tests.livekit_sim.conftest import AGENT, twirp
from tests.livekit_sim.sink import WebhookSink


def open_rooms(sim: LiveKitSimulator) -> list[str]:
    return [room.name for room in sim.state.list_rooms()]


def test_a_room_closes_departure_timeout_after_the_last_human_left(
    sim: LiveKitSimulator, client: SimulatorClient, clock: VirtualClock, sink: WebhookSink
) -> None:
    twirp(sim, lambda api: api.room.create_room(CreateRoomRequest(name="standup", departure_timeout=70)))
    alice = client.join("standup", "alice").participant
    clock.advance(500)  # far beyond empty_timeout: someone is there
    assert sim.tick() == []
    client.leave("standup", sid=alice.sid)

    clock.advance(69)
    assert sim.tick() == [] and client.state().rooms[0].closes_at == clock.now() + 1
    clock.advance(1)
    assert sim.tick() == ["standup"]

    assert open_rooms(sim) == [] and client.state().rooms == []
    assert sink.events(4)[3] == ("room_finished", "")


def test_an_agent_does_not_keep_a_room_open_but_its_leaving_restarts_the_clock(
    sim: LiveKitSimulator, client: SimulatorClient, clock: VirtualClock
) -> None:
    worker = client.register_worker(AGENT)
    client.join("standup", "alice")
    sim.world.create_dispatch("standup", AGENT, "")
    [job] = client.messages(worker)
    client.leave("standup", identity="alice")
    clock.advance(10)
    client.end_job(worker, job.job_id)  # the agent's own grace ends; it leaves 10 s after alice

    clock.advance(15)
    assert sim.tick() == [], "20 s (LiveKit's default) since the agent left, not since alice did"
    clock.advance(5)
    assert sim.tick() == ["standup"]


def test_a_room_no_human_joined_closes_after_empty_timeout(
    sim: LiveKitSimulator, clock: VirtualClock
) -> None:
    twirp(sim, lambda api: api.room.create_room(CreateRoomRequest(name="standup", empty_timeout=60)))
    sim.world.create_dispatch("standup", AGENT, "")  # no worker, and an agent would not count anyway

    clock.advance(59)
    assert sim.tick() == []
    clock.advance(1)
    assert sim.tick() == ["standup"]


def test_rooms_opened_by_a_join_or_a_dispatch_get_livekits_defaults(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    client.join("joined", "alice")
    sim.world.create_dispatch("dispatched", AGENT, "")

    assert {(r.name, r.departure_timeout, r.empty_timeout) for r in client.state().rooms} == {
        ("joined", 20, 300),
        ("dispatched", 20, 300),
    }


def test_a_phone_caller_keeps_the_room_open(
    sim: LiveKitSimulator, client: SimulatorClient, clock: VirtualClock
) -> None:
    client.join("standup", "+15550100", ParticipantKind.SIP)
    client.join("standup", "recorder", ParticipantKind.EGRESS)

    clock.advance(3600)

    assert sim.tick() == [] and client.state().rooms[0].closes_at is None


def test_a_closing_room_ends_its_jobs_after_everyone_left(
    sim: LiveKitSimulator, client: SimulatorClient, clock: VirtualClock, sink: WebhookSink
) -> None:
    worker = client.register_worker(AGENT)
    client.join("standup", "alice")
    sim.world.create_dispatch("standup", AGENT, "")
    [job] = client.messages(worker)
    client.leave("standup", identity="alice")

    clock.advance(20)
    sim.tick()

    assert client.messages(worker) == [
        JobTermination(job_id=job.job_id, room="standup", reason="room closed")
    ]
    assert client.state().workers[0].jobs == []
    assert [kind for kind, _ in sink.events(6)[3:]] == [
        "participant_left",
        "participant_left",
        "room_finished",
    ]


def test_a_room_closed_behind_the_simulators_back_is_reported_at_the_next_tick(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink
) -> None:
    client.join("standup", "alice")
    sim.state.close_room("standup")

    assert sim.tick() == ["standup"]
    assert sink.events(4)[2:] == [("participant_left", "alice"), ("room_finished", "")]
