"""Time intervals: unions, overlaps and percentiles, the arithmetic every figure is built from."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

Interval = tuple[float, float]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of ``intervals`` (empty ones dropped)."""
    merged: list[list[float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


class Union:
    """A merged set of intervals that answers "how much of [a, b) is covered" quickly."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        self.spans = merge(intervals)
        self._ends = [e for _, e in self.spans]

    def covered(self, start: float, end: float) -> float:
        total = 0.0
        index = bisect.bisect_right(self._ends, start)
        while index < len(self.spans) and self.spans[index][0] < end:
            s, e = self.spans[index]
            total += min(e, end) - max(s, start)
            index += 1
        return total

    def next_cover(self, at: float) -> float | None:
        """The first moment at or after ``at`` that is covered (``at`` itself if covered)."""
        index = bisect.bisect_right(self._ends, at)
        if index == len(self.spans):
            return None
        start, _ = self.spans[index]
        return max(start, at)

    def within(self, start: float, end: float) -> list[Interval]:
        """The parts of [start, end) that are covered."""
        parts: list[Interval] = []
        index = bisect.bisect_right(self._ends, start)
        while index < len(self.spans) and self.spans[index][0] < end:
            s, e = self.spans[index]
            parts.append((max(s, start), min(e, end)))
            index += 1
        return parts

    def gaps_within(self, start: float, end: float) -> list[Interval]:
        """The parts of [start, end) not covered."""
        gaps: list[Interval] = []
        cursor = start
        index = bisect.bisect_right(self._ends, start)
        while index < len(self.spans) and self.spans[index][0] < end:
            s, e = self.spans[index]
            if s > cursor:
                gaps.append((cursor, s))
            cursor = max(cursor, e)
            index += 1
        if cursor < end:
            gaps.append((cursor, end))
        return gaps

    @property
    def length(self) -> float:
        return sum(e - s for s, e in self.spans)


def overlap_seconds(intervals: Sequence[Interval]) -> float:
    """Seconds covered by more than one interval, counted once per extra interval."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    total, depth, last = 0.0, 0, 0.0
    for at, step in edges:
        if depth > 1:
            total += (depth - 1) * (at - last)
        depth += step
        last = at
    return total


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


EMPTY = Union(())
