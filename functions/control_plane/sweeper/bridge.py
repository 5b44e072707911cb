"""The sweep's asyncio side: LiveKit calls fanned out on one loop, bridged for worker threads,
and metrics summed across those threads and emitted once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from control_plane.ports import (
    Dispatch,
    LiveKitRateLimited,
    LiveParticipant,
    LiveRoom,
    MetricsSink,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncLiveKit(Protocol):
    """The LiveKit calls the sweep fans out, plus the loop they run on."""

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T: ...

    async def alist_rooms(self, names: Sequence[str] = ()) -> list[LiveRoom]:
        """Open rooms: all of them, or those of ``names`` that are open."""
        ...

    async def alist_dispatches(self, room: str) -> list[Dispatch]: ...

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch: ...

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None: ...

    async def alist_participants(self, room: str) -> list[LiveParticipant]: ...

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom: ...


_EPSILON = 1e-9


class CallBudget:
    """A token bucket for the sweep's LiveKit calls: ``rate`` a second, bursts of ``rate``.

    LiveKit Cloud limits a project's server API (1,000 requests a minute on its documented
    default), shared with webhooks' reconciles and the join API; the sweep must not eat it.
    Time and sleep are injected so the limiter is tested without waiting.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = max(rate, 1.0)
        self._at = clock()
        self.waited_seconds = 0.0

    async def take(self) -> None:
        if self._rate <= 0:
            return
        while True:
            now = self._clock()
            self._tokens = min(max(self._rate, 1.0), self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1 - _EPSILON:  # float refills may land a hair under 1
                self._tokens = max(self._tokens - 1, 0.0)
                return
            wait = max((1 - self._tokens) / self._rate, _EPSILON)
            self.waited_seconds += wait
            await self._sleep(wait)


RATE_LIMIT_BACKOFF_SECONDS = (0.5, 1.0, 2.0)


class BudgetedLiveKit:
    """The sweep's LiveKit: every call takes a token first, and a 429 backs off and retries
    (0.5 s, 1 s, 2 s) before it counts as LiveKit being unavailable."""

    def __init__(
        self,
        livekit: AsyncLiveKit,
        budget: CallBudget,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._livekit = livekit
        self._budget = budget
        self._sleep = sleep
        self.calls = 0
        self.rate_limited = 0

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._livekit.run(coroutine)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        for backoff in (*RATE_LIMIT_BACKOFF_SECONDS, None):
            await self._budget.take()
            self.calls += 1
            try:
                return await call()
            except LiveKitRateLimited:
                self.rate_limited += 1
                if backoff is None:
                    raise
                log.warning("LiveKit rate limit hit: backing off", extra={"seconds": backoff})
                await self._sleep(backoff)
        raise AssertionError("unreachable")

    async def alist_rooms(self, names: Sequence[str] = ()) -> list[LiveRoom]:
        return await self._call(lambda: self._livekit.alist_rooms(names))

    async def alist_dispatches(self, room: str) -> list[Dispatch]:
        return await self._call(lambda: self._livekit.alist_dispatches(room))

    async def acreate_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        return await self._call(lambda: self._livekit.acreate_dispatch(room, agent_name, metadata))

    async def adelete_dispatch(self, room: str, dispatch_id: str) -> None:
        await self._call(lambda: self._livekit.adelete_dispatch(room, dispatch_id))

    async def alist_participants(self, room: str) -> list[LiveParticipant]:
        return await self._call(lambda: self._livekit.alist_participants(room))

    async def acreate_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        return await self._call(lambda: self._livekit.acreate_room(name, departure_timeout, empty_timeout))


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
