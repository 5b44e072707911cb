"""The sweep's async LiveKit face over a synchronous gateway (the in-memory twin)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from control_plane.ports import (
    Dispatch,
    LiveKitGateway,
    LiveParticipant,
    LiveRoom,
)

T = TypeVar("T")


class AsyncLiveKitFacade:
    """The async face of a synchronous gateway (the in-memory twin), on a loop of its own."""

    def __init__(self, gateway: LiveKitGateway) -> None:
        self._gateway = gateway
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    async def alist_rooms(self, names: Sequence[str] = ()) -> list[LiveRoom]:
        rooms = self._gateway.list_rooms()
        wanted = set(names)
        return [room for room in rooms if room.name in wanted] if wanted else rooms

    async def alist_dispatches(self, room: str) -> list[Dispatch]:
        return self._gateway.list_dispatches(room)

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return self._gateway.create_dispatch(room, agent_name, metadata)

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None:
        self._gateway.delete_dispatch(room, dispatch_id)

    async def alist_participants(self, room: str) -> list[LiveParticipant]:
        return self._gateway.list_participants(room)

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        return self._gateway.create_room(name, departure_timeout, empty_timeout)
