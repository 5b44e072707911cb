"""One LiveKitGateway contract, run against the in-memory twin and the real adapter on a fake server.

The twin is what the core's unit tests trust; these tests hold it to the behaviour the real
adapter shows over real Twirp, protobuf and JWT. The last section covers what only the wire can
show: authentication, grants and the raw protocol.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from google.protobuf.message import Message
from livekit.api import AccessToken, VideoGrants
from livekit.protocol.agent_dispatch import DeleteAgentDispatchRequest, ListAgentDispatchRequest
from livekit.protocol.models import Room
from livekit.protocol.room import CreateRoomRequest, DeleteRoomRequest, RoomParticipantIdentity

from control_plane.adapters.livekit_gateway import LiveKitApiGateway, LiveKitRejectedError
from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.ports import LiveKitGateway, LiveKitUnavailable
from local.livekit_sim import FakeLiveKitServer, RejectedAuth

AGENT = "voice-agent"
STANDARD, SIP, AGENT_KIND = 0, 3, 4


@dataclass
class Subject:
    gateway: LiveKitGateway
    state: InMemoryLiveKit  # what LiveKit holds, whichever implementation answers


@pytest.fixture(params=["twin", "adapter"])
def livekit(request: pytest.FixtureRequest) -> Iterator[Subject]:
    if request.param == "twin":
        twin = InMemoryLiveKit()
        yield Subject(twin, twin)
        return
    server: FakeLiveKitServer = request.getfixturevalue("fake_livekit")
    gateway = LiveKitApiGateway(server.url, lambda: (server.api_key, server.api_secret))
    yield Subject(gateway, server.state)
    gateway.close()


@pytest.fixture
def gateway(fake_livekit: FakeLiveKitServer) -> Iterator[LiveKitApiGateway]:
    adapter = LiveKitApiGateway(fake_livekit.url, lambda: (fake_livekit.api_key, fake_livekit.api_secret))
    yield adapter
    adapter.close()


# --- contract: both implementations -----------------------------------------------------------


def test_created_dispatch_is_listed_until_deleted(livekit: Subject) -> None:
    livekit.state.register_worker(AGENT)

    created = livekit.gateway.create_dispatch("room-a", AGENT, '{"lang": "en"}')

    [listed] = livekit.gateway.list_dispatches("room-a")
    assert listed.dispatch_id == created.dispatch_id
    assert (listed.room, listed.agent_name, listed.metadata) == ("room-a", AGENT, '{"lang": "en"}')
    assert listed.created_at == pytest.approx(time.time(), abs=5)
    livekit.gateway.delete_dispatch("room-a", created.dispatch_id)
    assert livekit.gateway.list_dispatches("room-a") == []


def test_creating_a_dispatch_twice_makes_two(livekit: Subject) -> None:
    first = livekit.gateway.create_dispatch("room-a", AGENT, "")
    second = livekit.gateway.create_dispatch("room-a", AGENT, "")

    assert first.dispatch_id != second.dispatch_id
    assert livekit.state.calls["create_dispatch"] == 2
    assert {d.dispatch_id for d in livekit.gateway.list_dispatches("room-a")} == {
        first.dispatch_id,
        second.dispatch_id,
    }


def test_deleting_a_dispatch_that_is_gone_is_not_an_error(livekit: Subject) -> None:
    livekit.state.open_room("room-a")

    livekit.gateway.delete_dispatch("room-a", "AD_never_existed")
    livekit.gateway.delete_dispatch("room-never-opened", "AD_never_existed")


def test_dispatches_vanish_with_their_room(livekit: Subject) -> None:
    dispatch = livekit.gateway.create_dispatch("room-a", AGENT, "")
    livekit.state.close_room("room-a")

    assert livekit.gateway.list_dispatches("room-a") == []
    livekit.gateway.delete_dispatch("room-a", dispatch.dispatch_id)


def test_dispatch_created_without_a_worker_never_gets_a_job(livekit: Subject) -> None:
    livekit.gateway.create_dispatch("room-a", AGENT, "")
    livekit.state.register_worker(AGENT)

    [dispatch] = livekit.gateway.list_dispatches("room-a")
    assert dispatch.jobs == ()
    assert not dispatch.has_running_job


def test_dispatch_created_after_the_last_worker_left_gets_no_job(livekit: Subject) -> None:
    livekit.state.register_worker(AGENT)
    livekit.state.unregister_worker(AGENT)
    livekit.gateway.create_dispatch("room-a", AGENT, "")

    [dispatch] = livekit.gateway.list_dispatches("room-a")
    assert dispatch.jobs == ()


def test_dispatch_created_with_a_worker_gets_one_running_job(livekit: Subject) -> None:
    livekit.state.register_worker("another-agent")
    livekit.state.register_worker(AGENT)
    livekit.gateway.create_dispatch("room-a", AGENT, "")

    [dispatch] = livekit.gateway.list_dispatches("room-a")
    assert [job.status for job in dispatch.jobs] == ["JS_RUNNING"]
    assert dispatch.jobs[0].job_id
    assert dispatch.has_running_job


def test_list_participants_tells_humans_from_agents(livekit: Subject) -> None:
    livekit.state.add_participant("room-a", "PA_human", "alice", STANDARD)
    livekit.state.add_participant("room-a", "PA_phone", "+15550100", SIP)
    livekit.state.add_participant("room-a", "PA_agent", "agent-1", AGENT_KIND)
    livekit.state.add_participant("room-b", "PA_other", "bob", STANDARD)

    participants = livekit.gateway.list_participants("room-a")

    assert {(p.sid, p.identity, p.kind) for p in participants} == {
        ("PA_human", "alice", STANDARD),
        ("PA_phone", "+15550100", SIP),
        ("PA_agent", "agent-1", AGENT_KIND),
    }
    assert all(p.joined_at == pytest.approx(time.time(), abs=5) for p in participants)
    assert livekit.gateway.list_participants("room-never-opened") == []
    livekit.state.remove_participant("room-a", "PA_human")
    assert {p.sid for p in livekit.gateway.list_participants("room-a")} == {"PA_phone", "PA_agent"}


def test_create_room_sets_timeouts_and_leaves_an_open_room_as_it_is(livekit: Subject) -> None:
    """livekit-server v1.13.5 returns an open room unchanged (the parity test sees it do)."""
    created = livekit.gateway.create_room("room-a", departure_timeout=90, empty_timeout=120)

    assert (created.name, created.departure_timeout, created.empty_timeout) == ("room-a", 90, 120)
    assert created.created_at == pytest.approx(time.time(), abs=5)
    again = livekit.gateway.create_room("room-a", departure_timeout=300, empty_timeout=600)
    assert (again.sid, again.departure_timeout, again.empty_timeout) == (created.sid, 90, 120)


def test_list_rooms_shows_open_rooms_with_their_participant_count(livekit: Subject) -> None:
    livekit.gateway.create_room("room-a", departure_timeout=90, empty_timeout=120)
    livekit.state.add_participant("room-b", "PA_1", "alice")
    livekit.state.add_participant("room-b", "PA_2", "bob")
    livekit.state.add_participant("room-b", "PA_3", "agent-1", kind=AGENT_KIND)  # never counted
    livekit.state.open_room("room-c")
    livekit.state.close_room("room-c")

    rooms = {room.name: room for room in livekit.gateway.list_rooms()}

    assert set(rooms) == {"room-a", "room-b"}
    assert (rooms["room-a"].departure_timeout, rooms["room-a"].num_participants) == (90, 0)
    assert rooms["room-b"].num_participants == 2


def test_when_livekit_is_down_every_call_fails_and_nothing_changes(livekit: Subject) -> None:
    livekit.state.register_worker(AGENT)
    existing = livekit.gateway.create_dispatch("room-a", AGENT, "")
    livekit.state.add_participant("room-a", "PA_1", "alice")
    livekit.state.set_down(True)

    calls: list[Callable[[], object]] = [
        lambda: livekit.gateway.list_dispatches("room-a"),
        lambda: livekit.gateway.create_dispatch("room-a", AGENT, ""),
        lambda: livekit.gateway.delete_dispatch("room-a", existing.dispatch_id),
        lambda: livekit.gateway.delete_dispatch("room-never-opened", "AD_x"),
        lambda: livekit.gateway.list_participants("room-a"),
        livekit.gateway.list_rooms,
        lambda: livekit.gateway.create_room("room-b", departure_timeout=90, empty_timeout=90),
    ]
    for call in calls:
        with pytest.raises(LiveKitUnavailable):
            call()

    livekit.state.set_down(False)
    assert [d.dispatch_id for d in livekit.gateway.list_dispatches("room-a")] == [existing.dispatch_id]
    assert [room.name for room in livekit.gateway.list_rooms()] == ["room-a"]


# --- adapter only ------------------------------------------------------------------------------


def test_adapter_reads_credentials_only_when_a_call_needs_them(fake_livekit: FakeLiveKitServer) -> None:
    reads: list[int] = []

    def credentials() -> tuple[str, str]:
        reads.append(1)
        return fake_livekit.api_key, fake_livekit.api_secret

    adapter = LiveKitApiGateway(fake_livekit.url, credentials)
    assert reads == [], "building the adapter (a cold start) reads no secret"
    adapter.list_rooms()
    adapter.create_room("room-a", departure_timeout=90, empty_timeout=90)
    adapter.close()
    assert reads == [1, 1]


def test_a_rotated_secret_is_used_without_restarting(fake_livekit: FakeLiveKitServer) -> None:
    current = {"secret": "the-old-secret-before-rotation"}
    adapter = LiveKitApiGateway(fake_livekit.url, lambda: (fake_livekit.api_key, current["secret"]))
    with pytest.raises(LiveKitRejectedError):
        adapter.list_rooms()

    current["secret"] = fake_livekit.api_secret  # Secrets Manager now returns the new value
    adapter.create_room("room-a", departure_timeout=90, empty_timeout=90)

    assert [room.name for room in adapter.list_rooms()] == ["room-a"]
    adapter.close()


def test_sweeper_can_fan_out_on_the_adapter_loop(
    fake_livekit: FakeLiveKitServer, gateway: LiveKitApiGateway
) -> None:
    rooms = [f"room-{i}" for i in range(100)]
    for room in rooms:
        fake_livekit.state.open_room(room)
    fake_livekit.latency = 0.05

    async def sweep() -> list[int]:
        return [len(found) for found in await asyncio.gather(*(gateway.alist_dispatches(r) for r in rooms))]

    started = time.monotonic()
    assert gateway.run(sweep()) == [0] * 100
    assert time.monotonic() - started < 1.5  # one at a time would take 5 s
    assert fake_livekit.requests["ListDispatch"] == 100


def test_adapter_reports_an_unreachable_server_as_unavailable(fake_livekit: FakeLiveKitServer) -> None:
    adapter = LiveKitApiGateway(fake_livekit.url, lambda: (fake_livekit.api_key, fake_livekit.api_secret))
    fake_livekit.stop()

    with pytest.raises(LiveKitUnavailable, match="unreachable"):
        adapter.list_rooms()
    adapter.close()


def test_token_signed_with_the_wrong_secret_is_rejected(fake_livekit: FakeLiveKitServer) -> None:
    adapter = LiveKitApiGateway(fake_livekit.url, lambda: (fake_livekit.api_key, "not-the-secret" * 3))

    with pytest.raises(LiveKitRejectedError) as rejected:
        adapter.create_room("room-a", departure_timeout=90, empty_timeout=90)
    adapter.close()

    assert (rejected.value.status, rejected.value.code) == (401, "unauthenticated")
    assert "not-the-secret" not in str(rejected.value)
    assert fake_livekit.rejected_auth == [
        RejectedAuth("livekit.RoomService/CreateRoom", "unauthenticated", "InvalidSignatureError")
    ]
    assert fake_livekit.state.get_room("room-a") is None


def test_token_without_the_needed_grant_is_denied(fake_livekit: FakeLiveKitServer) -> None:
    fake_livekit.state.open_room("room-a")
    admin_of_another_room = _token(fake_livekit, VideoGrants(room_admin=True, room="room-b"))
    lister = _token(fake_livekit, VideoGrants(room_list=True))

    dispatches = _post(
        fake_livekit,
        "AgentDispatchService/ListDispatch",
        ListAgentDispatchRequest(room="room-a"),
        admin_of_another_room,
    )
    created = _post(fake_livekit, "RoomService/CreateRoom", CreateRoomRequest(name="room-c"), lister)

    assert (dispatches.status, dispatches.json()["code"]) == (403, "permission_denied")
    assert (created.status, created.json()["code"]) == (403, "permission_denied")
    assert [r.code for r in fake_livekit.rejected_auth] == ["permission_denied", "permission_denied"]
    assert fake_livekit.state.get_room("room-c") is None


def test_raw_protobuf_round_trips_and_errors_are_twirp_json(fake_livekit: FakeLiveKitServer) -> None:
    creator = _token(fake_livekit, VideoGrants(room_create=True))
    admin = _token(fake_livekit, VideoGrants(room_admin=True, room="room-a"))

    created = _post(
        fake_livekit,
        "RoomService/CreateRoom",
        CreateRoomRequest(name="room-a", departure_timeout=75),
        creator,
    )
    missing = _post(
        fake_livekit,
        "AgentDispatchService/DeleteDispatch",
        DeleteAgentDispatchRequest(room="room-a", dispatch_id="AD_x"),
        admin,
    )
    closed = _post(
        fake_livekit,
        "AgentDispatchService/ListDispatch",
        ListAgentDispatchRequest(room="room-z"),
        _token(fake_livekit, VideoGrants(room_admin=True, room="room-z")),
    )

    assert (created.status, created.content_type) == (200, "application/protobuf")
    room = Room.FromString(created.body)
    stored = fake_livekit.state.get_room("room-a")
    assert stored is not None
    assert (room.name, room.sid, room.departure_timeout) == ("room-a", stored.sid, 75)
    assert (missing.status, missing.content_type, missing.json()["code"]) == (
        404,
        "application/json",
        "not_found",
    )
    assert (closed.status, closed.json()["code"]) == (
        503,
        "unavailable",
    )  # LiveKit's answer for a closed room
    assert fake_livekit.requests == {"CreateRoom": 1, "DeleteDispatch": 1, "ListDispatch": 1}


def test_room_admin_calls_over_the_wire_change_the_shared_state(fake_livekit: FakeLiveKitServer) -> None:
    state = fake_livekit.state
    state.add_participant("room-a", "PA_1", "alice")
    state.add_participant("room-a", "PA_2", "bob")
    dispatch = state.create_dispatch("room-a", AGENT, "")
    admin = _token(fake_livekit, VideoGrants(room_admin=True, room="room-a"))
    creator = _token(fake_livekit, VideoGrants(room_create=True))

    removed = _post(
        fake_livekit,
        "RoomService/RemoveParticipant",
        RoomParticipantIdentity(room="room-a", identity="bob"),
        admin,
    )
    assert removed.status == 200
    assert [p.identity for p in state.list_participants("room-a")] == ["alice"]
    deleted = _post(fake_livekit, "RoomService/DeleteRoom", DeleteRoomRequest(room="room-a"), creator)
    assert deleted.status == 200
    assert state.get_room("room-a") is None
    assert state.get_dispatch("room-a", dispatch.dispatch_id) is None
    fake_livekit.set_down(True)
    down = _post(fake_livekit, "RoomService/CreateRoom", CreateRoomRequest(name="room-b"), creator)
    assert (down.status, down.json()["code"]) == (503, "unavailable")


@dataclass
class _Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> dict[str, str]:
        parsed: dict[str, str] = json.loads(self.body)
        return parsed


def _token(server: FakeLiveKitServer, grants: VideoGrants) -> str:
    return AccessToken(server.api_key, server.api_secret).with_grants(grants).to_jwt()


def _post(server: FakeLiveKitServer, route: str, message: Message, token: str) -> _Reply:
    request = urllib.request.Request(
        f"{server.url}/twirp/livekit.{route}",
        data=message.SerializeToString(),
        headers={"Content-Type": "application/protobuf", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never a proxy
    try:
        with opener.open(request, timeout=5) as response:
            return _Reply(response.status, response.headers.get_content_type(), response.read())
    except urllib.error.HTTPError as error:
        return _Reply(error.code, error.headers.get_content_type(), error.read())
