"""A local LiveKit server for tests: real HTTP, real Twirp, real protobuf, real JWT grant checks.

It serves an ``InMemoryLiveKit``, so the twin and the server share one state model and a test
drives both through the same helpers (``server.state.register_worker(...)``). What it adds is
everything the twin cannot show: the wire format ``livekit-api`` speaks, LiveKit's error codes
and HTTP statuses, and the grants LiveKit demands of each call. Two LiveKit quirks are kept on
purpose because the adapter must cope with them: dispatch calls for a room that is not open
answer 503 "no response from servers", and CreateDispatch opens a missing room.

It runs an aiohttp server on its own event loop in a daemon thread, on 127.0.0.1 and a free
port; ``latency`` delays every answer without blocking other requests, so a benchmark can keep
thousands of calls in flight.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

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

TWIRP_STATUS = {
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "internal": 500,
    "unavailable": 503,
}
NO_ROOM_SERVER = "no response from servers"  # what LiveKit says for dispatch calls on a closed room


class FakeTwirpError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


@dataclass(frozen=True)
class RejectedAuth:
    """One request the fake refused for its token: ``unauthenticated`` or ``permission_denied``."""

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


class FakeLiveKitServer:
    """LiveKit's RoomService and AgentDispatchService over Twirp, backed by an InMemoryLiveKit."""

    def __init__(
        self,
        state: InMemoryLiveKit | None = None,
        *,
        api_key: str = "fake-api-key",
        api_secret: str | None = None,
        latency: float = 0.0,
    ) -> None:
        self.state = state or InMemoryLiveKit()
        self.api_key = api_key
        self.api_secret = api_secret or secrets.token_urlsafe(32)
        self.latency = latency
        self.requests: Counter[str] = Counter()
        self.rejected_auth: list[RejectedAuth] = []
        self._verifier = TokenVerifier(self.api_key, self.api_secret)
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def set_down(self, down: bool) -> None:
        """While down every call answers 503 ``unavailable`` (the twin raises LiveKitUnavailable)."""
        self.state.set_down(down)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeLiveKitServer:
        app = web.Application()
        app.router.add_post("/twirp/{service}/{method}", self._serve)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0, backlog=4096).start())
        self._port = runner.addresses[0][1]
        self._loop, self._runner = loop, runner
        self._thread = threading.Thread(target=loop.run_forever, name="fake-livekit", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> FakeLiveKitServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- Twirp ---------------------------------------------------------------------------

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
        room = self.state.create_room(request.name, request.departure_timeout, request.empty_timeout)
        return _room_proto(room)

    def _list_rooms(self, request: ListRoomsRequest) -> ListRoomsResponse:
        if not request.names:
            return ListRoomsResponse(rooms=[_room_proto(room) for room in self.state.list_rooms()])
        named = (self.state.get_room(name) for name in request.names)  # no scan: 10,000 rooms in a bench
        return ListRoomsResponse(rooms=[_room_proto(room) for room in named if room is not None])

    def _delete_room(self, request: DeleteRoomRequest) -> DeleteRoomResponse:
        if not self.state.close_room(request.room):
            raise FakeTwirpError("not_found", "requested room does not exist")
        return DeleteRoomResponse()

    def _list_participants(self, request: ListParticipantsRequest) -> ListParticipantsResponse:
        participants = self.state.list_participants(request.room)
        return ListParticipantsResponse(participants=[_participant_proto(p) for p in participants])

    def _remove_participant(self, request: RoomParticipantIdentity) -> RemoveParticipantResponse:
        for participant in self.state.list_participants(request.room):
            if participant.identity == request.identity:
                self.state.remove_participant(request.room, participant.sid)
                return RemoveParticipantResponse()
        raise FakeTwirpError("not_found", "participant not found")

    # --- AgentDispatchService ------------------------------------------------------------

    def _create_dispatch(self, request: CreateAgentDispatchRequest) -> AgentDispatch:
        dispatch = self.state.create_dispatch(request.room, request.agent_name, request.metadata)
        return _dispatch_proto(dispatch)

    def _delete_dispatch(self, request: DeleteAgentDispatchRequest) -> AgentDispatch:
        self._require_open_room(request.room)
        dispatch = self.state.get_dispatch(request.room, request.dispatch_id)
        if dispatch is None:
            raise FakeTwirpError("not_found", "dispatch not found")
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


def _twirp_error(code: str, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=TWIRP_STATUS[code])


def _room_proto(room: LiveRoom) -> Room:
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
        kind=participant.kind,  # type: ignore[arg-type]
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
            state=JobState(status=job.status),
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
