"""What livekit-server v1.13.5 does that the simulator once did otherwise, one rule a test (read in
its source, and seen by the parity test in ``test_parity_real_server.py``)."""

from __future__ import annotations

import time

import pytest
from livekit.api import (
    CreateAgentDispatchRequest,
    CreateRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
    LiveKitAPI,
    RoomAgentDispatch,
    RoomParticipantIdentity,
    TwirpError,
)

from control_plane.adapters.memory.runtime import VirtualClock
from local.livekit_sim import DeliveryPolicy, LiveKitSimulator, Outcome, ParticipantKind, SimulatorClient
from local.livekit_sim.models import JobAssignment
from tests.livekit_sim.conftest import AGENT, API_KEY, API_SECRET, twirp
from tests.livekit_sim.sink import WebhookSink, wait_until

BIG_METADATA = "m" * (512 * 1024 + 1)


def test_create_room_on_an_open_room_changes_neither_its_timeouts_nor_its_dispatches(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    twirp(sim, lambda api: api.room.create_room(CreateRoomRequest(name="standup", departure_timeout=75)))

    again = twirp(
        sim,
        lambda api: api.room.create_room(
            CreateRoomRequest(
                name="standup",
                departure_timeout=200,
                empty_timeout=900,
                agents=[RoomAgentDispatch(agent_name=AGENT)],
            )
        ),
    )

    assert (again.departure_timeout, again.empty_timeout) == (75, 300)
    [room] = client.state().rooms
    assert (room.departure_timeout, [d.agent_name for d in room.dispatches]) == (75, [""])


def test_create_room_with_agents_offers_their_jobs_as_the_room_opens(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    worker = client.register_worker(AGENT)

    twirp(
        sim,
        lambda api: api.room.create_room(
            CreateRoomRequest(name="standup", agents=[RoomAgentDispatch(agent_name=AGENT, metadata="{}")])
        ),
    )

    [assignment] = client.messages(worker)
    assert isinstance(assignment, JobAssignment) and assignment.metadata == "{}"
    [dispatch] = twirp(sim, lambda api: api.agent_dispatch.list_dispatch("standup"))
    assert dispatch.agent_name == AGENT, "no empty-name default beside the agents asked for"


def test_a_room_opened_without_agents_dispatches_the_empty_agent_name(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    anyone = client.register_worker("")  # LiveKit's automatic dispatch: workers without a name

    client.join("standup", "alice")

    [dispatch] = twirp(sim, lambda api: api.agent_dispatch.list_dispatch("standup"))
    assert dispatch.agent_name == "" and len(dispatch.state.jobs) == 1
    assert [m.type for m in client.messages(anyone)] == ["assignment"]


def test_create_dispatch_answers_before_any_job_exists(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    client.register_worker(AGENT)
    client.join("standup", "alice")

    created = twirp(
        sim,
        lambda api: api.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(room="standup", agent_name=AGENT)
        ),
    )

    assert list(created.state.jobs) == []
    listed = twirp(sim, lambda api: api.agent_dispatch.get_dispatch(created.id, "standup"))
    assert listed is not None and len(listed.state.jobs) == 1


def test_names_are_checked_for_length_only(sim: LiveKitSimulator) -> None:
    names = ["x" * 256, "a\x01b", "a/b c", ""]

    async def create_all(api: LiveKitAPI) -> list[str]:
        return [(await api.room.create_room(CreateRoomRequest(name=name))).name for name in names]

    assert twirp(sim, create_all) == names

    with pytest.raises(TwirpError) as refused:
        twirp(sim, lambda api: api.room.create_room(CreateRoomRequest(name="x" * 257)))
    assert (refused.value.code, refused.value.status) == ("invalid_argument", 400)
    assert refused.value.message.endswith("room name length exceeds limits: max length 256")


@pytest.mark.parametrize(
    "request_of",
    [
        lambda api: api.room.create_room(CreateRoomRequest(name="standup", metadata=BIG_METADATA)),
        lambda api: api.room.create_room(
            CreateRoomRequest(
                name="standup", agents=[RoomAgentDispatch(agent_name=AGENT, metadata=BIG_METADATA)]
            )
        ),
        lambda api: api.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(room="standup", agent_name=AGENT, metadata=BIG_METADATA)
        ),
    ],
    ids=["room", "room-agents", "dispatch"],
)
def test_metadata_over_512_kib_is_an_invalid_argument_and_opens_nothing(
    sim: LiveKitSimulator, client: SimulatorClient, request_of: object
) -> None:
    with pytest.raises(TwirpError) as refused:
        twirp(sim, request_of)  # type: ignore[arg-type]

    assert (
        refused.value.code == "invalid_argument" and "metadata size exceeds limits" in refused.value.message
    )
    assert client.state().rooms == []


def test_what_missing_things_answer(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    client.join("standup", "alice")

    assert (
        list(
            twirp(
                sim, lambda api: api.room.list_participants(ListParticipantsRequest(room="nope"))
            ).participants
        )
        == []
    )
    with pytest.raises(TwirpError) as no_participant:
        twirp(
            sim,
            lambda api: api.room.remove_participant(RoomParticipantIdentity(room="standup", identity="bob")),
        )
    with pytest.raises(TwirpError) as no_dispatch:
        twirp(sim, lambda api: api.agent_dispatch.delete_dispatch("AD_nope", "standup"))

    assert (no_participant.value.code, no_participant.value.message) == (
        "not_found",
        "twirp error unknown: participant does not exist",
    )
    assert (no_dispatch.value.code, no_dispatch.value.message) == (
        "not_found",
        "twirp error unknown: dispatch ID not found",
    )


def test_num_participants_leaves_agents_out_and_is_refreshed_every_5_seconds(
    sim: LiveKitSimulator, client: SimulatorClient, clock: VirtualClock, sink: WebhookSink
) -> None:
    client.join("standup", "alice")
    client.join("standup", "agent-1", kind=ParticipantKind.AGENT)

    def listed() -> int:
        [room] = twirp(sim, lambda api: api.room.list_rooms(ListRoomsRequest(names=["standup"]))).rooms
        return room.num_participants

    assert listed() == 0, "a room under 5 s old still shows the count it opened with"
    assert [r.json["room"].get("numParticipants", 0) for r in sink.wait_for(3)] == [0, 0, 0]
    clock.advance(5)
    sim.tick()
    assert listed() == 1, "alice; the agent never counts"
    client.join("standup", "bob")
    assert listed() == 1, "refreshed less than 5 s ago"
    clock.advance(5)
    sim.tick()
    assert listed() == 2


def test_departure_is_counted_in_whole_seconds(
    sim: LiveKitSimulator, client: SimulatorClient, clock: VirtualClock
) -> None:
    twirp(sim, lambda api: api.room.create_room(CreateRoomRequest(name="standup", departure_timeout=2)))
    client.join("standup", "alice")
    clock.advance(0.9)
    client.leave("standup", identity="alice")

    clock.advance(1.1)  # 1.1 s after alice left, but 2 whole seconds by LiveKit's Unix() clock
    assert sim.tick() == ["standup"]


def test_a_full_room_queue_drops_the_next_event_at_once(sink: WebhookSink, clock: VirtualClock) -> None:
    sink.answers.append((503, {"Retry-After": "1"}))  # holds the queue for a second
    tiny = DeliveryPolicy(max_depth=2, retry_wait_min=0.01, retry_wait_max=0.01)
    with LiveKitSimulator(
        api_key=API_KEY, api_secret=API_SECRET, webhook_url=sink.url, clock=clock, delivery=tiny
    ) as sim:
        sim.world.join("standup", "alice")
        sink.wait_for(1)  # room_started is being sent (and told to come back in a second)
        sim.world.join("standup", "bob")  # queued behind alice's join: the queue holds 2
        sim.world.join("standup", "carol")  # refused

        wait_until(lambda: len(sim.webhooks.deliveries) == 4, what="4 outcomes")
        dropped = [(d.event, d.outcome) for d in sim.webhooks.deliveries if d.outcome is Outcome.DROPPED]
        assert dropped == [("participant_joined", Outcome.DROPPED)]
        assert [r.json.get("participant", {}).get("identity") for r in sink.received[1:]] == [
            None,
            "alice",
            "bob",
        ]


def test_a_503_with_retry_after_waits_that_long(sink: WebhookSink, clock: VirtualClock) -> None:
    sink.answers.append((503, {"Retry-After": "1"}))
    quick = DeliveryPolicy(retry_wait_min=0.01, retry_wait_max=0.01)
    with LiveKitSimulator(
        api_key=API_KEY, api_secret=API_SECRET, webhook_url=sink.url, clock=clock, delivery=quick
    ) as sim:
        started = time.monotonic()
        sim.world.join("standup", "alice")
        sink.wait_for(2)
        waited = time.monotonic() - started

    assert waited >= 1.0, "the backoff (0.01 s) gave way to the server's Retry-After"
