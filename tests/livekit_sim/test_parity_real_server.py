"""The same short session on the simulator and on a real livekit-server: the webhooks, the room
states and the error answers they produce must match.

The real server is found as ``local/livekit_server.py`` says (``LIVEKIT_SERVER``, ``livekit-server``
on PATH, or our cached build) and runs with ``--dev`` on 127.0.0.1; its participants are real
WebRTC clients made with the ``livekit`` rtc SDK. Without either, the test is skipped and says why.
The session (about 15 s): CreateRoom, and again with other timeouts; a human joins, an agent
participant joins, the human connects again under the same identity; the room is looked at, then
again once LiveKit refreshed its participant count; the human leaves, then the agent; the room
closes ``departure_timeout`` after the agent left. Then the error answers of a few bad calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from livekit.api import (
    AccessToken,
    CreateAgentDispatchRequest,
    CreateRoomRequest,
    DeleteRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
    LiveKitAPI,
    RoomParticipantIdentity,
    TwirpError,
    VideoGrants,
)

from local.livekit_server import LiveKitServer, ServerConfig, find_server, missing_reason
from local.livekit_sim import LiveKitSimulator, ParticipantKind
from tests.livekit_sim.sink import WebhookSink, wait_until

rtc = pytest.importorskip(
    "livekit.rtc", reason="the livekit rtc SDK (pip install livekit) makes the participants"
)

KEY = "devkey"
SECRET = "parity-secret-0123456789-0123456789-abcdef"
ROOM = "parity"
DEPARTURE = 2
REFRESH_WAIT = 5.5  # LiveKit refreshes num_participants every 5 s


class Participants(Protocol):
    """How a session's participants come and go on one server."""

    async def join(self, identity: str, agent: bool = False) -> None: ...
    async def leave(self, identity: str) -> None: ...
    async def close(self) -> None: ...


class RealParticipants:
    """WebRTC clients: the newest connection of each identity is the one that can leave."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._rooms: dict[str, list[Any]] = {}

    async def join(self, identity: str, agent: bool = False) -> None:
        token = AccessToken(KEY, SECRET).with_identity(identity)
        token = token.with_grants(VideoGrants(room_join=True, room=ROOM))
        if agent:
            token = token.with_kind("agent")
        room = rtc.Room()
        await room.connect(self._url, token.to_jwt())
        self._rooms.setdefault(identity, []).append(room)

    async def leave(self, identity: str) -> None:
        await self._rooms[identity].pop().disconnect()

    async def close(self) -> None:
        for rooms in self._rooms.values():
            for room in rooms:
                await room.disconnect()


class SimulatedParticipants:
    def __init__(self, sim: LiveKitSimulator) -> None:
        self._sim = sim

    async def join(self, identity: str, agent: bool = False) -> None:
        kind = ParticipantKind.AGENT if agent else ParticipantKind.STANDARD
        self._sim.world.join(ROOM, identity, kind)

    async def leave(self, identity: str) -> None:
        self._sim.world.leave(ROOM, identity=identity)

    async def close(self) -> None:
        return None


@dataclass
class Observed:
    webhooks: list[tuple[object, ...]]
    states: dict[str, object]
    errors: dict[str, tuple[str, str] | str]
    closed_after: float  # seconds from the agent's leaving to room_finished


def webhook_view(body: dict[str, Any]) -> tuple[object, ...]:
    """What the control plane reads of a webhook (ids and times differ by nature)."""
    room = body.get("room", {})
    participant = body.get("participant", {})
    return (
        body["event"],
        room.get("name"),
        room.get("departureTimeout", 0),
        room.get("emptyTimeout", 0),
        participant.get("identity"),
        participant.get("kind", "STANDARD") if participant else None,
        participant.get("state") if participant else None,
    )


async def twirp_error(call: Awaitable[object]) -> tuple[str, str] | str:
    try:
        await call
    except TwirpError as error:
        return (error.code, error.message)
    return "ok"


async def session(api: LiveKitAPI, people: Participants, sink: WebhookSink) -> Observed:
    states: dict[str, object] = {}

    async def room_state(label: str) -> None:
        rooms = (await api.room.list_rooms(ListRoomsRequest(names=[ROOM]))).rooms
        listed = (await api.room.list_participants(ListParticipantsRequest(room=ROOM))).participants
        state: dict[str, object] = {
            "rooms": [(r.name, r.departure_timeout, r.empty_timeout, r.num_participants) for r in rooms],
            "participants": sorted((p.identity, p.kind) for p in listed),
        }
        if rooms:  # ListDispatch of a closed room is an error, compared below
            dispatches = await api.agent_dispatch.list_dispatch(ROOM)
            state["dispatches"] = sorted((d.agent_name, len(d.state.jobs)) for d in dispatches)
        states[label] = state

    created = await api.room.create_room(
        CreateRoomRequest(name=ROOM, departure_timeout=DEPARTURE, empty_timeout=30)
    )
    again = await api.room.create_room(CreateRoomRequest(name=ROOM, departure_timeout=9, empty_timeout=9))
    states["create_room again"] = (again.sid == created.sid, again.departure_timeout, again.empty_timeout)
    await people.join("alice")
    await people.join("agent-1", agent=True)
    await people.join("alice")  # a page refresh: the same identity connects again
    await asyncio.sleep(1)
    await room_state("everyone in")
    await asyncio.sleep(REFRESH_WAIT)
    await room_state("count refreshed")
    await people.leave("alice")
    await asyncio.sleep(1)
    await people.leave("agent-1")
    agent_left = time.monotonic()
    await asyncio.to_thread(
        wait_until,
        lambda: any(r.json["event"] == "room_finished" for r in sink.received),
        DEPARTURE + 5,
        "room_finished",
    )
    closed_after = time.monotonic() - agent_left
    await room_state("closed")

    errors = {
        "room name 257": await twirp_error(api.room.create_room(CreateRoomRequest(name="x" * 257))),
        "metadata 512 KiB + 1": await twirp_error(
            api.agent_dispatch.create_dispatch(
                CreateAgentDispatchRequest(room=ROOM, agent_name="a", metadata="m" * (512 * 1024 + 1))
            )
        ),
        "delete missing room": await twirp_error(api.room.delete_room(DeleteRoomRequest(room="nope"))),
        "remove missing participant": await twirp_error(
            api.room.remove_participant(RoomParticipantIdentity(room="nope", identity="bob"))
        ),
        "list dispatches of a closed room": await twirp_error(api.agent_dispatch.list_dispatch(ROOM)),
    }
    await people.close()
    return Observed([], states, errors, closed_after)


def run_on(url: str, people: Callable[[], Participants], sink: WebhookSink) -> Observed:
    async def run() -> Observed:
        async with LiveKitAPI(url, KEY, SECRET) as api:
            return await session(api, people(), sink)

    observed = asyncio.run(run())
    time.sleep(0.5)  # the last webhooks on their way
    for received in sink.received:
        received.verified(KEY, SECRET)  # both sign with the API secret, or this raises
    observed.webhooks = [webhook_view(received.json) for received in sink.received]
    return observed


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """The rtc SDK keeps its native client's threads for the life of the process."""
    yield


@pytest.fixture
def server_binary() -> Iterator[Any]:
    binary = find_server()
    if binary is None:
        pytest.skip(missing_reason())
    yield binary


def test_the_simulator_and_livekit_server_produce_the_same_session(server_binary: Any) -> None:
    with WebhookSink() as sink, LiveKitServer(server_binary, ServerConfig(KEY, SECRET, [sink.url])) as server:
        real = run_on(server.http_url, lambda: RealParticipants(server.url), sink)
    with WebhookSink() as sink, LiveKitSimulator(api_key=KEY, api_secret=SECRET, webhook_url=sink.url) as sim:
        simulated = run_on(sim.url, lambda: SimulatedParticipants(sim), sink)

    print(real)  # what LiveKit did, for the log of a failure
    assert simulated.webhooks == real.webhooks
    assert simulated.states == real.states
    assert simulated.errors == real.errors
    assert abs(simulated.closed_after - real.closed_after) < 1.5, (simulated.closed_after, real.closed_after)
