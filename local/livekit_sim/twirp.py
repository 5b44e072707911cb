"""LiveKit's RoomService and AgentDispatchService over Twirp: real HTTP, protobuf and JWT grants.

``TwirpService`` decodes a call, checks the bearer token and the grant LiveKit demands of that
method, and answers from a ``LiveKitState``: the in-memory twin itself (``FakeLiveKitServer``,
what the contract and integration tests use) or the simulator's world, which adds webhooks,
workers and room timeouts on top of it. LiveKit's quirks are kept on purpose because the
adapter must cope with them: dispatch calls for a room that is not open answer 503 "no response
from servers", CreateDispatch opens a missing room and answers before any job exists, and names
are checked for length only (control characters, spaces, slashes and even an empty room name
pass). Messages are LiveKit v1.13.5's, "twirp error unknown: " prefix included where it has it.
``latency`` delays every answer without blocking other requests, so a benchmark can keep
thousands of calls in flight.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Protocol, cast

import jwt
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims
from livekit.protocol.agent import Job, JobState
from livekit.protocol.agent_dispatch import (
    AgentDispatch,
    AgentDispatchState,
    CreateAgentDispatchRequest,
    DeleteAgentDispatchRequest,
    ListAgentDispatchRequest,
    ListAgentDispatchResponse,
)
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    DeleteRoomResponse,
    ListParticipantsRequest,
    ListParticipantsResponse,
    ListRoomsRequest,
    ListRoomsResponse,
    RemoveParticipantResponse,
    RoomParticipantIdentity,
)

from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.ports import Dispatch, LiveKitUnavailable, LiveParticipant, LiveRoom
from local.livekit_sim.server import BackgroundServer

TWIRP_STATUS = {
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "unimplemented": 501,
    "bad_route": 404,
    "internal": 500,
    "unavailable": 503,
}
PSRPC = "twirp error unknown: "  # how LiveKit words errors its services return as psrpc errors
NO_ROOM_SERVER = PSRPC + "no response from servers"  # dispatch calls on a room that is not open
MAX_ROOM_NAME_LENGTH = 256  # LiveKit's LimitConfig defaults
MAX_METADATA_SIZE = 512 * 1024


class LiveKitState(Protocol):
    """What the Twirp methods read and change: ``InMemoryLiveKit`` has exactly these."""

    @property
    def is_down(self) -> bool: ...
    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom: ...
    def list_rooms(self) -> list[LiveRoom]: ...
    def get_room(self, name: str) -> LiveRoom | None: ...
    def close_room(self, name: str) -> bool: ...
    def list_participants(self, room: str) -> list[LiveParticipant]: ...
    def remove_participant(self, room: str, sid: str) -> bool: ...
    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch: ...
    def get_dispatch(self, room: str, dispatch_id: str) -> Dispatch | None: ...
    def delete_dispatch(self, room: str, dispatch_id: str) -> None: ...
    def list_dispatches(self, room: str) -> list[Dispatch]: ...


class RoomsWithAgents(Protocol):
    """A state that opens rooms with CreateRoom's ``agents`` (the simulator; the twin does not)."""

    def create_room(
        self,
        name: str,
        departure_timeout: int,
        empty_timeout: int,
        agents: Sequence[tuple[str, str]] | None = None,
    ) -> LiveRoom: ...


class FakeTwirpError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


@dataclass(frozen=True)
class RejectedAuth:
    """One request refused for its token: ``unauthenticated`` or ``permission_denied``."""

    method: str
    code: str
    reason: str


@dataclass(frozen=True)
class _Method:
    request_type: type[Message]
    authorize: Callable[[Claims, Any], str | None]  # returns why the grants do not suffice
    handle: Callable[[Any], Message]


def _needs_room_create(claims: Claims, _request: Any) -> str | None:
    return None if claims.video and claims.video.room_create else "roomCreate grant required"


def _needs_room_list(claims: Claims, _request: Any) -> str | None:
    return None if claims.video and claims.video.room_list else "roomList grant required"


def _needs_room_admin(claims: Claims, request: Any) -> str | None:
    """LiveKit's EnsureAdminPermission: roomAdmin, for exactly the room the request names."""
    video = claims.video
    if video and video.room_admin and video.room == request.room:
        return None
    return f"roomAdmin grant for room {request.room!r} required"


class TwirpService:
    """The Twirp routes over a ``LiveKitState``; counts requests and keeps refused tokens."""

    def __init__(self, state: LiveKitState, api_key: str, api_secret: str, latency: float = 0.0) -> None:
        self.state = state
        self.api_key = api_key
        self.api_secret = api_secret
        self.latency = latency
        self.requests: Counter[str] = Counter()
        self.rejected_auth: list[RejectedAuth] = []
        self._verifier = TokenVerifier(api_key, api_secret)
        self._methods: dict[str, _Method] = {
            "livekit.RoomService/CreateRoom": _Method(
                CreateRoomRequest, _needs_room_create, self._create_room
            ),
            "livekit.RoomService/ListRooms": _Method(ListRoomsRequest, _needs_room_list, self._list_rooms),
            "livekit.RoomService/DeleteRoom": _Method(
                DeleteRoomRequest, _needs_room_create, self._delete_room
            ),
            "livekit.RoomService/ListParticipants": _Method(
                ListParticipantsRequest, _needs_room_admin, self._list_participants
            ),
            "livekit.RoomService/RemoveParticipant": _Method(
                RoomParticipantIdentity, _needs_room_admin, self._remove_participant
            ),
            "livekit.AgentDispatchService/CreateDispatch": _Method(
                CreateAgentDispatchRequest, _needs_room_admin, self._create_dispatch
            ),
            "livekit.AgentDispatchService/DeleteDispatch": _Method(
                DeleteAgentDispatchRequest, _needs_room_admin, self._delete_dispatch
            ),
            "livekit.AgentDispatchService/ListDispatch": _Method(
                ListAgentDispatchRequest, _needs_room_admin, self._list_dispatch
            ),
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/twirp/{service}/{method}", self._serve)

    async def _serve(self, request: web.Request) -> web.Response:
        route = f"{request.match_info['service']}/{request.match_info['method']}"
        method = self._methods.get(route)
        if method is None:
            return _twirp_error("bad_route", f"no handler for {route}")
        self.requests[request.match_info["method"]] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            if self.state.is_down:
                raise FakeTwirpError("unavailable", "fake LiveKit is down")
            claims = self._authenticate(route, request.headers.get("Authorization", ""))
            try:
                message = method.request_type.FromString(await request.read())
            except DecodeError as error:
                raise FakeTwirpError("malformed", f"bad protobuf body: {error}") from error
            denied = method.authorize(claims, message)
            if denied:
                self.rejected_auth.append(RejectedAuth(route, "permission_denied", denied))
                raise FakeTwirpError("permission_denied", denied)
            reply = method.handle(message)
        except FakeTwirpError as failure:
            return _twirp_error(failure.code, failure.msg)
        except LiveKitUnavailable as error:
            return _twirp_error("unavailable", str(error))
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    def _authenticate(self, route: str, authorization: str) -> Claims:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            self.rejected_auth.append(RejectedAuth(route, "unauthenticated", "no bearer token"))
            raise FakeTwirpError("unauthenticated", "authorization header must be 'Bearer <jwt>'")
        try:
            return self._verifier.verify(token)
        except jwt.PyJWTError as error:
            self.rejected_auth.append(RejectedAuth(route, "unauthenticated", type(error).__name__))
            raise FakeTwirpError("unauthenticated", f"invalid token: {type(error).__name__}") from error

    # --- RoomService ---------------------------------------------------------------------

    def _create_room(self, request: CreateRoomRequest) -> Room:
        if len(request.name.encode()) > MAX_ROOM_NAME_LENGTH:
            raise FakeTwirpError(
                "invalid_argument",
                f"{PSRPC}room name length exceeds limits: max length {MAX_ROOM_NAME_LENGTH}",
            )
        for metadata in (request.metadata, *(agent.metadata for agent in request.agents)):
            if len(metadata.encode()) > MAX_METADATA_SIZE:
                raise FakeTwirpError("invalid_argument", f"metadata size exceeds limits {MAX_METADATA_SIZE}")
        if not request.agents:
            room = self.state.create_room(request.name, request.departure_timeout, request.empty_timeout)
            return room_proto(room)
        if isinstance(self.state, InMemoryLiveKit):  # the twin has no dispatches of its own
            raise FakeTwirpError("unimplemented", "CreateRoom with agents needs the simulator")
        agents = [(agent.agent_name, agent.metadata) for agent in request.agents]
        state = cast(RoomsWithAgents, self.state)
        room = state.create_room(request.name, request.departure_timeout, request.empty_timeout, agents)
        return room_proto(room)

    def _list_rooms(self, request: ListRoomsRequest) -> ListRoomsResponse:
        if not request.names:
            return ListRoomsResponse(rooms=[room_proto(room) for room in self.state.list_rooms()])
        named = (self.state.get_room(name) for name in request.names)  # no scan: 10,000 rooms in a bench
        return ListRoomsResponse(rooms=[room_proto(room) for room in named if room is not None])

    def _delete_room(self, request: DeleteRoomRequest) -> DeleteRoomResponse:
        if not self.state.close_room(request.room):
            raise FakeTwirpError("not_found", f"{PSRPC}requested room does not exist")
        return DeleteRoomResponse()

    def _list_participants(self, request: ListParticipantsRequest) -> ListParticipantsResponse:
        participants = self.state.list_participants(request.room)
        return ListParticipantsResponse(participants=[_participant_proto(p) for p in participants])

    def _remove_participant(self, request: RoomParticipantIdentity) -> RemoveParticipantResponse:
        for participant in self.state.list_participants(request.room):
            if participant.identity == request.identity:
                self.state.remove_participant(request.room, participant.sid)
                return RemoveParticipantResponse()
        raise FakeTwirpError("not_found", f"{PSRPC}participant does not exist")

    # --- AgentDispatchService ------------------------------------------------------------

    def _create_dispatch(self, request: CreateAgentDispatchRequest) -> AgentDispatch:
        """LiveKit answers before the room has asked any worker: the reply never holds a job."""
        if len(request.metadata.encode()) > MAX_METADATA_SIZE:
            raise FakeTwirpError("invalid_argument", f"{PSRPC}metadata size exceeds limits")
        dispatch = self.state.create_dispatch(request.room, request.agent_name, request.metadata)
        return _dispatch_proto(replace(dispatch, jobs=()))

    def _delete_dispatch(self, request: DeleteAgentDispatchRequest) -> AgentDispatch:
        self._require_open_room(request.room)
        dispatch = self.state.get_dispatch(request.room, request.dispatch_id)
        if dispatch is None:
            raise FakeTwirpError("not_found", f"{PSRPC}dispatch ID not found")
        self.state.delete_dispatch(request.room, request.dispatch_id)
        return _dispatch_proto(dispatch)

    def _list_dispatch(self, request: ListAgentDispatchRequest) -> ListAgentDispatchResponse:
        self._require_open_room(request.room)
        dispatches = [
            d
            for d in self.state.list_dispatches(request.room)
            if not request.dispatch_id or d.dispatch_id == request.dispatch_id
        ]
        return ListAgentDispatchResponse(agent_dispatches=[_dispatch_proto(d) for d in dispatches])

    def _require_open_room(self, room: str) -> None:
        if self.state.get_room(room) is None:
            raise FakeTwirpError("unavailable", NO_ROOM_SERVER)


class FakeLiveKitServer:
    """The Twirp services alone, over an ``InMemoryLiveKit``, on 127.0.0.1 and a free port.

    The twin and the server share one state model, so a test drives both through the same
    helpers (``server.state.register_worker(...)``); what the server adds is everything the twin
    cannot show: the wire format ``livekit-api`` speaks, LiveKit's error codes and HTTP
    statuses, and the grants LiveKit demands of each call.
    """

    def __init__(
        self,
        state: InMemoryLiveKit | None = None,
        *,
        api_key: str = "fake-api-key",
        api_secret: str | None = None,
        latency: float = 0.0,
    ) -> None:
        self.state = state or InMemoryLiveKit()
        self.twirp = TwirpService(self.state, api_key, api_secret or secrets.token_urlsafe(32), latency)
        self._server = BackgroundServer("fake-livekit")

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_key(self) -> str:
        return self.twirp.api_key

    @property
    def api_secret(self) -> str:
        return self.twirp.api_secret

    @property
    def requests(self) -> Counter[str]:
        return self.twirp.requests

    @property
    def rejected_auth(self) -> list[RejectedAuth]:
        return self.twirp.rejected_auth

    @property
    def latency(self) -> float:
        return self.twirp.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.twirp.latency = seconds

    def set_down(self, down: bool) -> None:
        """While down every call answers 503 ``unavailable`` (the twin raises LiveKitUnavailable)."""
        self.state.set_down(down)

    def start(self) -> FakeLiveKitServer:
        app = web.Application()
        self.twirp.add_routes(app)
        self._server.start(app)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeLiveKitServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _twirp_error(code: str, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=TWIRP_STATUS[code])


def room_proto(room: LiveRoom) -> Room:
    return Room(
        sid=room.sid,
        name=room.name,
        num_participants=room.num_participants,
        departure_timeout=room.departure_timeout,
        empty_timeout=room.empty_timeout,
        creation_time=int(room.created_at),
        creation_time_ms=int(room.created_at * 1000),
    )


def _participant_proto(participant: LiveParticipant) -> ParticipantInfo:
    return ParticipantInfo(
        sid=participant.sid,
        identity=participant.identity,
        kind=ParticipantInfo.Kind.Name(participant.kind),
        state=ParticipantInfo.ACTIVE,
        joined_at=int(participant.joined_at),
        joined_at_ms=int(participant.joined_at * 1000),
    )


def _dispatch_proto(dispatch: Dispatch) -> AgentDispatch:
    jobs = [
        Job(
            id=job.job_id,
            dispatch_id=dispatch.dispatch_id,
            agent_name=dispatch.agent_name,
            metadata=dispatch.metadata,
            state=JobState(status=job.status, participant_identity=job.participant_identity),
        )
        for job in dispatch.jobs
    ]
    return AgentDispatch(
        id=dispatch.dispatch_id,
        agent_name=dispatch.agent_name,
        room=dispatch.room,
        metadata=dispatch.metadata,
        state=AgentDispatchState(jobs=jobs, created_at=int(dispatch.created_at * 1_000_000_000)),
    )
