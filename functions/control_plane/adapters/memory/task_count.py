"""In-memory twin of ``adapters/dynamodb_task_count.py``: the same item, the same rules.

It stores the very item the DynamoDB adapter writes (:func:`count_item`, version and all), and
writes exactly when that adapter would (only when the map changes). A lock stands in for the
conditional write: the twin never loses a race, so it never answers "contended".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

from control_plane.task_count import confirmed, count_item, count_state, counted, healed, released


class InMemoryTaskCount:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: dict[str, Any] | None = None

    def reserve(self, keys: Sequence[str], max_tasks: int, now: float) -> list[str]:
        granted: list[str] = []

        def take(live: dict[str, float]) -> dict[str, float]:
            after, granted[:] = counted(live, keys, max_tasks, now)
            return after

        self._change(take)
        return granted

    def confirm(self, keys: Sequence[str], task_arns: Sequence[str], now: float) -> None:
        self._change(lambda live: confirmed(live, keys, task_arns, now))

    def release(self, keys: Collection[str]) -> None:
        self._change(lambda live: released(live, keys))

    def heal(self, listed: Collection[str], now: float) -> None:
        self._change(lambda live: healed(live, listed, now))

    def live(self) -> dict[str, float]:
        with self._lock:
            return count_state(self._item)[0] if self._item is not None else {}

    def stored_item(self) -> dict[str, Any] | None:
        """The item as DynamoDB would hold it, for tests."""
        with self._lock:
            return None if self._item is None else {**self._item, "live": dict(self._item["live"])}

    def _change(self, change: Callable[[dict[str, float]], dict[str, float]]) -> None:
        with self._lock:
            live, version = count_state(self._item) if self._item is not None else ({}, 0)
            after = change(live)
            if after != live:
                self._item = count_item(after, version + 1)
