"""In-memory twin of ``adapters/dynamodb_launch_limiter.py``: the same item, the same math.

It stores the very item the DynamoDB adapter writes (:func:`limiter_item`, version and all) and
writes it exactly when that adapter would (only for a grant of at least one task), so the
contract tests compare what each stores. A lock stands in for the conditional write: the twin
never loses a race, so it never answers with the adapter's "contended" grant.
"""

from __future__ import annotations

import threading
from typing import Any

from control_plane.launch_limit import LaunchLimits, limiter_item, limiter_state, take_launch_tokens
from control_plane.ports import LaunchGrant


class InMemoryLaunchLimiter:
    def __init__(self, limits: LaunchLimits | None = None) -> None:
        self._limits = limits if limits is not None else LaunchLimits()
        self._lock = threading.Lock()
        self._item: dict[str, Any] | None = None

    def acquire(self, tasks: int, now: float) -> LaunchGrant:
        with self._lock:
            state, version = limiter_state(self._item) if self._item is not None else (None, 0)
            after, grant = take_launch_tokens(state, tasks, now, self._limits)
            if grant.tasks > 0:
                self._item = limiter_item(after, version + 1)
            return grant

    def stored_item(self) -> dict[str, Any] | None:
        """The item as DynamoDB would hold it, for tests and the simulator."""
        with self._lock:
            return dict(self._item) if self._item is not None else None
