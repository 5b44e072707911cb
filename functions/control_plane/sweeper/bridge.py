"""The sweep's asyncio side: LiveKit calls fanned out on one loop, bridged for worker threads,
and metrics summed across those threads and emitted once."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from control_plane.ports import (
    Dispatch,
    LiveParticipant,
    LiveRoom,
    MetricsSink,
)

T = TypeVar("T")


class AsyncLiveKit(Protocol):
    """The LiveKit calls the sweep fans out, plus the loop they run on."""

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T: ...

    async def alist_rooms(self) -> list[LiveRoom]: ...

    async def alist_dispatches(self, room: str) -> list[Dispatch]: ...

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch: ...

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None: ...

    async def alist_participants(self, room: str) -> list[LiveParticipant]: ...

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom: ...


class LoopBridge:
    """A synchronous LiveKitGateway for the sweep's worker threads: each call runs on the
    sweep's loop (where the HTTP session lives) and the thread waits for its answer."""

    def __init__(self, livekit: AsyncLiveKit, loop: asyncio.AbstractEventLoop) -> None:
        self._livekit = livekit
        self._loop = loop

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def list_dispatches(self, room: str) -> list[Dispatch]:
        return self._call(self._livekit.alist_dispatches(room))

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return self._call(self._livekit.acreate_dispatch(room, agent_name, metadata))

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        self._call(self._livekit.adelete_dispatch(room, dispatch_id))

    def list_participants(self, room: str) -> list[LiveParticipant]:
        return self._call(self._livekit.alist_participants(room))

    def list_rooms(self) -> list[LiveRoom]:
        return self._call(self._livekit.alist_rooms())

    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        return self._call(self._livekit.acreate_room(name, departure_timeout, empty_timeout))


MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]


class SweepMetrics:
    """Collects what worker threads count; summed per metric and emitted once, at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: defaultdict[MetricKey, float] = defaultdict(float)

    def count(
        self, name: str, value: float = 1, unit: str = "Count", dimensions: Mapping[str, str] | None = None
    ) -> None:
        with self._lock:
            self._sums[name, unit, tuple(sorted((dimensions or {}).items()))] += value

    def flush(self, sink: MetricsSink) -> dict[str, float]:
        """Emit everything to ``sink``; returns it as ``{"Name[Dim=value]": total}``."""
        with self._lock:
            sums, self._sums = dict(self._sums), defaultdict(float)
        summary: dict[str, float] = {}
        for (name, unit, dimensions), value in sorted(sums.items()):
            sink.count(name, value, unit, dict(dimensions) or None)
            label = ",".join(f"{key}={val}" for key, val in dimensions)
            summary[f"{name}[{label}]" if label else name] = value
        return summary
