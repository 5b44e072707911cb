"""Webhooks as LiveKit sends them: protojson bodies signed with the API secret, one ordered queue
per room, retries on 5xx and connection errors, drops, and the injected faults."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from control_plane.adapters.memory.runtime import VirtualClock
from local.livekit_sim import DeliveryPolicy, LiveKitSimulator, Outcome, SimulatorClient, WebhookFaults
from tests.livekit_sim.conftest import API_KEY, API_SECRET, FAST
from tests.livekit_sim.sink import Received, WebhookSink, wait_until

MakeSim = Callable[..., LiveKitSimulator]


@pytest.fixture
def make_sim(clock: VirtualClock) -> Iterator[MakeSim]:
    """A simulator factory whose simulators all stop at the end of the test."""
    made: list[LiveKitSimulator] = []

    def make(**options: Any) -> LiveKitSimulator:
        settings: dict[str, Any] = {
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "clock": clock,
            "delivery": FAST,
        }
        simulator = LiveKitSimulator(**(settings | options)).start()
        made.append(simulator)
        return simulator

    yield make
    for simulator in made:
        simulator.stop()


def outcomes(sim: LiveKitSimulator, count: int) -> list[tuple[str, Outcome, int]]:
    wait_until(lambda: len(sim.webhooks.deliveries) >= count, what=f"{count} deliveries")
    return [(d.event, d.outcome, d.attempts) for d in sim.webhooks.deliveries]


def settled(sim: LiveKitSimulator, events: int) -> None:
    """Every event (and every duplicate of one) has its outcome."""
    hooks = sim.webhooks
    wait_until(lambda: len(hooks.deliveries) == events + hooks.stats().duplicated, what="all outcomes")


def test_webhooks_are_signed_protojson_that_livekit_api_verifies(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink, clock: VirtualClock
) -> None:
    joined = client.join("standup", "alice", metadata='{"role": "coach"}')

    started, alice = sink.wait_for(2)

    for received in (started, alice):
        assert received.content_type == "application/webhook+json"
        assert received.verified(API_KEY, API_SECRET).id == received.json["id"]
        with pytest.raises(jwt.InvalidSignatureError):
            received.verified(API_KEY, "another-secret-that-is-long-enough-0123456789")
        tampered = Received(received.body + b" ", received.authorization, received.content_type, 200)
        with pytest.raises(Exception, match="hash mismatch"):
            tampered.verified(API_KEY, API_SECRET)
    body = alice.json
    assert body["event"] == "participant_joined" and body["id"].startswith("EV_")
    assert body["createdAt"] == str(int(clock.now()))
    assert body["room"] | {"numParticipants": 1} == {
        "sid": joined.room_sid,
        "name": "standup",
        "emptyTimeout": 300,
        "departureTimeout": 20,
        "creationTime": str(int(clock.now())),
        "creationTimeMs": str(int(clock.now() * 1000)),
        "numParticipants": 1,
    }
    assert body["participant"] == {
        "sid": joined.participant.sid,
        "identity": "alice",
        "state": "ACTIVE",
        "metadata": '{"role": "coach"}',
        "joinedAt": str(int(clock.now())),
        "joinedAtMs": str(int(clock.now() * 1000)),
    }


def test_each_rooms_events_arrive_in_the_order_they_happened(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink
) -> None:
    rooms = [f"room-{n}" for n in range(4)]

    def session(room: str) -> None:
        for n in range(5):
            sim.world.join(room, f"p{n}")
            if n % 2:
                sim.world.leave(room, identity=f"p{n - 1}")

    players = [threading.Thread(target=session, args=(room,)) for room in rooms]
    for player in players:
        player.start()
    for player in players:
        player.join()

    received = sink.wait_for(4 * 8)
    for room in rooms:
        seen = [(r.json["event"], r.json.get("participant", {}).get("identity")) for r in received]
        in_room = [event for r, event in zip(received, seen, strict=True) if r.json["room"]["name"] == room]
        assert in_room == [
            ("room_started", None),
            ("participant_joined", "p0"),
            ("participant_joined", "p1"),
            ("participant_left", "p0"),
            ("participant_joined", "p2"),
            ("participant_joined", "p3"),
            ("participant_left", "p2"),
            ("participant_joined", "p4"),
        ]


def test_a_5xx_is_retried_with_the_same_body_until_it_is_delivered(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink
) -> None:
    sink.answers.extend([503, 500])

    client.join("standup", "alice")

    assert outcomes(sim, 2) == [
        ("room_started", Outcome.DELIVERED, 3),
        ("participant_joined", Outcome.DELIVERED, 1),
    ]
    first, second, third, _ = sink.wait_for(4)
    assert [r.status for r in (first, second, third)] == [503, 500, 200]
    assert first.body == second.body == third.body


def test_a_4xx_is_final(sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink) -> None:
    sink.answers.append(401)

    client.join("standup", "alice")

    assert outcomes(sim, 2) == [
        ("room_started", Outcome.REJECTED, 1),
        ("participant_joined", Outcome.DELIVERED, 1),
    ]
    assert sim.snapshot().webhooks.rejected == 1


def test_an_unreachable_endpoint_is_retried_then_the_event_dropped(make_sim: MakeSim) -> None:
    sim = make_sim(webhook_url="http://127.0.0.1:9/nobody-listens")

    sim.world.join("standup", "alice")

    assert outcomes(sim, 2) == [
        ("room_started", Outcome.DROPPED, 5),
        ("participant_joined", Outcome.DROPPED, 5),
    ]


def test_events_that_waited_longer_than_max_age_are_dropped_unsent(
    make_sim: MakeSim, sink: WebhookSink
) -> None:
    sink.answers.extend([503] * 5)
    slow = DeliveryPolicy(max_age=0.1, max_retries=4, retry_wait_min=0.05, retry_wait_max=0.05)
    sim = make_sim(webhook_url=sink.url, delivery=slow)

    sim.world.join("standup", "alice")
    sim.world.join("standup", "bob")

    assert outcomes(sim, 3) == [
        ("room_started", Outcome.DROPPED, 5),  # failed every retry (0.2 s): the rest aged in the queue
        ("participant_joined", Outcome.DROPPED, 0),
        ("participant_joined", Outcome.DROPPED, 0),
    ]
    assert len(sink.received) == 5


def test_an_event_can_be_duplicated_with_its_id(make_sim: MakeSim, sink: WebhookSink) -> None:
    sim = make_sim(webhook_url=sink.url, faults=WebhookFaults(duplicate=1.0))

    sim.world.join("standup", "alice")

    ids = [r.json["id"] for r in sink.wait_for(4)]
    assert ids[0] == ids[1] != ids[2] == ids[3]
    assert sim.snapshot().webhooks.duplicated == 2


def test_lost_events_are_never_sent(make_sim: MakeSim, sink: WebhookSink, client: SimulatorClient) -> None:
    sim = make_sim(webhook_url=sink.url, faults=WebhookFaults(loss=1.0))

    sim.world.join("standup", "alice")

    assert outcomes(sim, 2) == [("room_started", Outcome.LOST, 0), ("participant_joined", Outcome.LOST, 0)]
    assert sink.received == [] and sim.snapshot().webhooks.lost == 2


def test_a_reordered_event_lets_later_ones_of_its_room_pass(make_sim: MakeSim, sink: WebhookSink) -> None:
    sim = make_sim(webhook_url=sink.url, faults=WebhookFaults(reorder=1.0, reorder_window=1))

    sim.world.join("standup", "alice")  # room_started, alice joined: queued together
    sim.world.join("standup", "bob")

    assert sink.events(3) == [
        ("participant_joined", "alice"),
        ("room_started", ""),
        ("participant_joined", "bob"),  # held too, until the hold ran out
    ]


def test_faults_drawn_from_a_seed_repeat_exactly(make_sim: MakeSim, sink: WebhookSink) -> None:
    faults = WebhookFaults(loss=0.3, duplicate=0.3, seed=42)
    runs = []
    for _ in range(2):
        sim = make_sim(webhook_url=sink.url, faults=faults)
        for n in range(10):
            sim.world.join(f"room-{n}", "alice")
        settled(sim, events=20)
        runs.append(sorted((d.room, d.event, d.outcome, d.duplicate) for d in sim.webhooks.deliveries))

    assert runs[0] == runs[1]
    assert {outcome for _, _, outcome, _ in runs[0]} == {Outcome.LOST, Outcome.DELIVERED}
    assert any(duplicate for *_, duplicate in runs[0])
