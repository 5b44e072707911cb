"""LiveKitGateway over ``livekit-api``: rooms, participants and agent dispatches, spoken as Twirp.

``LiveKitAPI`` is asyncio-only and must be built inside a running loop, while the Lambda
handlers are synchronous. So each gateway owns one private event loop, created on first use and
kept across warm invocations together with the client's aiohttp session and its connections.
The port methods run the ``a``-prefixed coroutines on that loop; a sweeper can ``run`` its own
``asyncio.gather`` over the coroutines to fan out on the same loop and session.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import aiohttp
from livekit.api import LiveKitAPI
from livekit.api.twirp_client import ServerError
from livekit.protocol.agent import JobStatus
from livekit.protocol.agent_dispatch import AgentDispatch, CreateAgentDispatchRequest
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import CreateRoomRequest, ListParticipantsRequest, ListRoomsRequest

from control_plane.ports import (
    Dispatch,
    DispatchJob,
    LiveKitRateLimited,
    LiveKitUnavailable,
    LiveParticipant,
    LiveRoom,
)

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 5.0
_NOT_FOUND = "not_found"
_TRANSIENT_CODES = frozenset({"deadline_exceeded"})
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
_NANOSECONDS = 1_000_000_000


class LiveKitRejectedError(Exception):
    """LiveKit refused the request (credentials, grants, arguments): retrying the same call will not help."""

    def __init__(self, operation: str, code: str, status: int, message: str) -> None:
        super().__init__(f"LiveKit {operation} rejected: {code} (HTTP {status}) {message}".rstrip())
        self.code = code
        self.status = status


class _ServerUnavailable(LiveKitUnavailable):
    """LiveKit answered 503 ``unavailable``; for a dispatch call this may only mean the room is closed."""


class LiveKitApiGateway:
    """The real LiveKitGateway; credentials are fetched on first use so a cold start costs no secret read."""

    def __init__(
        self,
        url: str,
        credentials: Callable[[], tuple[str, str]],
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._url = url
        self._credentials = credentials
        self._timeout_seconds = timeout_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: LiveKitAPI | None = None
        self._api_credentials: tuple[str, str] | None = None
        self._loop_lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on this gateway's loop, where its HTTP session lives.

        A loop runs one caller at a time; the lock makes a shared gateway safe for threads
        (Lambda runs one invocation per container, so it never waits there).
        """
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coroutine)

    def close(self) -> None:
        """Close the HTTP session and the loop; a later call opens new ones."""
        if self._loop is None:
            return
        if self._api is not None:
            self._loop.run_until_complete(self._api.aclose())
            self._api = None
        self._loop.close()
        self._loop = None

    # --- LiveKitGateway -------------------------------------------------------------------

    def list_dispatches(self, room: str) -> list[Dispatch]:
        return self.run(self.alist_dispatches(room))

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return self.run(self.acreate_dispatch(room, agent_name, metadata))

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        self.run(self.adelete_dispatch(room, dispatch_id))

    def list_participants(self, room: str) -> list[LiveParticipant]:
        return self.run(self.alist_participants(room))

    def list_rooms(self) -> list[LiveRoom]:
        return self.run(self.alist_rooms())

    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        return self.run(self.acreate_room(name, departure_timeout, empty_timeout))

    # --- coroutines -----------------------------------------------------------------------

    async def alist_dispatches(self, room: str) -> list[Dispatch]:
        """Dispatches of ``room`` with their jobs; a room that is not open has none."""
        try:
            found = await _send(
                "list_dispatches", self._client().agent_dispatch.list_dispatch(room), self._timeout_seconds
            )
        except _ServerUnavailable:
            if await self._room_is_open(room):
                raise
            return []
        return [_dispatch(proto) for proto in found]

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        """Not idempotent: every call adds a dispatch. Its jobs appear later; list to see them."""
        request = CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
        created = await _send(
            "create_dispatch", self._client().agent_dispatch.create_dispatch(request), self._timeout_seconds
        )
        return _dispatch(created)

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None:
        """Delete a dispatch, ending its jobs; one already gone, or whose room closed, is fine."""
        try:
            await _send(
                "delete_dispatch",
                self._client().agent_dispatch.delete_dispatch(dispatch_id, room),
                self._timeout_seconds,
            )
        except LiveKitRejectedError as rejected:
            if rejected.code != _NOT_FOUND:
                raise
        except _ServerUnavailable:
            if await self._room_is_open(room):
                raise

    async def alist_participants(self, room: str) -> list[LiveParticipant]:
        request = ListParticipantsRequest(room=room)
        response = await _send(
            "list_participants", self._client().room.list_participants(request), self._timeout_seconds
        )
        return [_participant(proto) for proto in response.participants]

    async def alist_rooms(self, names: Sequence[str] = ()) -> list[LiveRoom]:
        """Open rooms, all of them or those named."""
        response = await _send(
            "list_rooms", self._client().room.list_rooms(ListRoomsRequest(names=names)), self._timeout_seconds
        )
        return [_room(proto) for proto in response.rooms]

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        """Open a room, or update the timeouts of an open one (LiveKit's CreateRoom does both)."""
        request = CreateRoomRequest(
            name=name, departure_timeout=departure_timeout, empty_timeout=empty_timeout
        )
        return _room(
            await _send("create_room", self._client().room.create_room(request), self._timeout_seconds)
        )

    # --- internals -----------------------------------------------------------------------

    def _client(self) -> LiveKitAPI:
        """Build the client on first use, inside the running loop as aiohttp requires.

        Credentials are asked for on every call (the caller caches them: Powertools keeps
        the secret five minutes), so a rotated LiveKit secret is picked up without a cold start.
        """
        credentials = self._credentials()
        if self._api is None or credentials != self._api_credentials:
            if self._api is not None:
                asyncio.get_running_loop().create_task(self._api.aclose())
            api_key, api_secret = credentials
            self._api = LiveKitAPI(
                self._url,
                api_key,
                api_secret,
                timeout=aiohttp.ClientTimeout(total=self._timeout_seconds),
            )
            self._api_credentials = credentials
        return self._api

    async def _room_is_open(self, room: str) -> bool:
        """LiveKit answers dispatch calls for a room that is not open with 503 "no response from
        servers" (livekit/python-sdks#466); only ListRooms tells that apart from an outage."""
        return any(found.name == room for found in await self.alist_rooms([room]))


async def _send(operation: str, request: Awaitable[T], timeout_seconds: float) -> T:
    """Await one Twirp call within the timeout, sorting failures into "try again later" and
    "will never work". livekit-api hands aiohttp ``timeout=None`` (no timeout at all), so the
    bound is kept here: a hung LiveKit must not hold a Lambda for its whole run."""
    try:
        return await asyncio.wait_for(request, timeout_seconds)
    except _TRANSPORT_ERRORS as error:
        raise LiveKitUnavailable(f"LiveKit {operation} unreachable: {type(error).__name__}") from error
    except ServerError as error:
        failure = f"LiveKit {operation} failed: {error.code} (HTTP {error.status})"
        if error.code == "unavailable":
            raise _ServerUnavailable(failure) from error
        if error.status == 429 or error.code == "resource_exhausted":
            raise LiveKitRateLimited(failure) from error
        if error.status >= 500 or error.code in _TRANSIENT_CODES:
            raise LiveKitUnavailable(failure) from error
        raise LiveKitRejectedError(operation, error.code, error.status, error.message) from error


def _dispatch(proto: AgentDispatch) -> Dispatch:
    return Dispatch(
        dispatch_id=proto.id,
        room=proto.room,
        agent_name=proto.agent_name,
        metadata=proto.metadata,
        created_at=proto.state.created_at / _NANOSECONDS,
        jobs=tuple(
            DispatchJob(job.id, _job_status(job.state.status), job.state.participant_identity)
            for job in proto.state.jobs
        ),
    )


def _job_status(status: int) -> str:
    """The JobStatus name (``JS_RUNNING``); a status newer than this library keeps its number."""
    try:
        return JobStatus.Name(status)
    except ValueError:
        return f"JS_UNKNOWN_{status}"


def _participant(proto: ParticipantInfo) -> LiveParticipant:
    joined_at = proto.joined_at_ms / 1000 if proto.joined_at_ms else float(proto.joined_at)
    return LiveParticipant(sid=proto.sid, identity=proto.identity, kind=int(proto.kind), joined_at=joined_at)


def _room(proto: Room) -> LiveRoom:
    created_at = proto.creation_time_ms / 1000 if proto.creation_time_ms else float(proto.creation_time)
    return LiveRoom(
        sid=proto.sid,
        name=proto.name,
        num_participants=proto.num_participants,
        departure_timeout=proto.departure_timeout,
        created_at=created_at,
        empty_timeout=proto.empty_timeout,
    )
