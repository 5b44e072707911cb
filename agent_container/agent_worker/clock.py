"""Time as ports, so every timer decision runs on a virtual clock in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What the code needs from an event loop; ``asyncio`` loops satisfy it as they are."""

    def call_later(self, delay: float, callback: Callable[[], object], /) -> TimerHandle: ...


class SystemClock:
    def now(self) -> float:
        return time.time()
