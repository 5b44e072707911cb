"""A log handler that keeps a flood of lines from drowning the ones that matter.

A reconnect loop or a chatty library can write thousands of lines a second; CloudWatch bills
every one and a human reading them finds nothing. :class:`RateLimitedHandler` wraps the
handler that really writes and lets through at most ``lines_per_second`` (a token bucket with
a burst), by priority:

- ERROR and above always pass, untouched and never aggregated;
- WARNING may use a reserved share of the bucket that INFO and DEBUG cannot touch, so a
  flood of INFO does not silence a warning;
- INFO and DEBUG are the first dropped.

A line identical to one passed within ``repeat_window`` seconds (same logger, level, message
and extra fields) is counted instead of written; when the window closes, one
"… repeated N times" line reports the count. Every ``summary_interval`` seconds a WARNING
line says how many lines were dropped, by level and by logger. Summaries and pending
repeats are written when due on the next line, on :meth:`flush` and on :meth:`close`.

Standard library only (the Lambda functions and the agent container both use it); the clock
is a parameter so tests drive it virtually.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter, deque
from collections.abc import Callable

_PLAIN_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
_STANDARD_ATTRIBUTES = _PLAIN_RECORD_ATTRIBUTES | {"message", "asctime", "taskName"}
SUMMARY_LOGGER = "log_rate_limit"

_RepeatKey = tuple[str, int, str, tuple[tuple[str, str], ...]]


class _Repeat:
    """Lines counted instead of written since the first one of a window; made on the first repeat."""

    __slots__ = ("count", "last")

    def __init__(self, last: logging.LogRecord) -> None:
        self.count = 1
        self.last = last


class RateLimitedHandler(logging.Handler):
    """Forwards records to ``target`` within a line budget; see the module docstring."""

    def __init__(
        self,
        target: logging.Handler,
        *,
        lines_per_second: float = 400.0,
        burst: float | None = None,
        warning_reserve: float = 0.2,
        repeat_window: float = 5.0,
        summary_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        burst = lines_per_second if burst is None else burst
        if lines_per_second <= 0 or burst < 1:
            raise ValueError("lines_per_second must be > 0 and burst >= 1")
        if not 0 <= warning_reserve < 1:
            raise ValueError("warning_reserve is a share of the burst: 0 <= share < 1")
        self.target = target
        self._rate = lines_per_second
        self._burst = float(burst)
        self._warning_reserve = warning_reserve * burst
        self._repeat_window = repeat_window
        self._summary_interval = summary_interval
        self._clock = clock
        self._tokens = self._burst
        now = clock()
        self._refilled_at = now
        self._summary_since = now
        self._repeats: dict[_RepeatKey, _Repeat | None] = {}
        self._repeat_deadlines: deque[tuple[float, _RepeatKey]] = deque()
        self._dropped_by_level: Counter[str] = Counter()
        self._dropped_by_logger: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        now = self._clock()
        self._write_due(now)
        if record.levelno >= logging.ERROR:
            self._take_token(now, keep=0.0)
            self.target.handle(record)
            return
        key = _repeat_key(record)
        if key in self._repeats:
            repeat = self._repeats[key]
            if repeat is None:
                self._repeats[key] = _Repeat(record)
            else:
                repeat.count += 1
                repeat.last = record
            return
        keep = 0.0 if record.levelno >= logging.WARNING else self._warning_reserve
        if not self._take_token(now, keep=keep):
            self._dropped_by_level[record.levelname] += 1
            self._dropped_by_logger[record.name] += 1
            return
        if self._repeat_window > 0:
            self._repeats[key] = None
            self._repeat_deadlines.append((now + self._repeat_window, key))
        self.target.handle(record)

    def flush(self) -> None:
        """Write the repeat counts and the drop summary that are due, then flush the target."""
        self.acquire()
        try:
            self._write_due(self._clock())
        finally:
            self.release()
        self.target.flush()

    def close(self) -> None:
        """Write every pending repeat count and drop summary, due or not: nothing is lost at exit."""
        self.acquire()
        try:
            now = self._clock()
            while self._repeat_deadlines:
                self._write_repeat(self._repeat_deadlines.popleft()[1], now)
            self._write_summary(now)
        finally:
            self.release()
        self.target.flush()
        super().close()

    def _take_token(self, now: float, *, keep: float) -> bool:
        """Take a token unless that would leave fewer than ``keep`` (the share reserved for others)."""
        tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if tokens - 1 >= keep:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        return False

    def _write_due(self, now: float) -> None:
        deadlines = self._repeat_deadlines
        while deadlines and deadlines[0][0] <= now:
            self._write_repeat(deadlines.popleft()[1], now)
        if now - self._summary_since >= self._summary_interval:
            self._write_summary(now)

    def _write_repeat(self, key: _RepeatKey, now: float) -> None:
        repeat = self._repeats.pop(key)
        if repeat is None:
            return
        line = copy.copy(repeat.last)
        line.msg = f"{repeat.last.getMessage()} … repeated {repeat.count} times"
        line.args = None
        line.exc_info = None
        line.exc_text = None
        line.__dict__["repeated"] = repeat.count
        self._take_token(now, keep=0.0)
        self.target.handle(line)

    def _write_summary(self, now: float) -> None:
        elapsed = now - self._summary_since
        self._summary_since = now
        dropped = sum(self._dropped_by_level.values())
        if not dropped:
            return
        by_level = ", ".join(f"{level} {count}" for level, count in self._dropped_by_level.most_common())
        by_logger = ", ".join(f"{name} {count}" for name, count in self._dropped_by_logger.most_common(3))
        summary = logging.LogRecord(
            SUMMARY_LOGGER,
            logging.WARNING,
            __file__,
            0,
            "log rate limit: dropped %d lines in the last %.0fs (%s); most from %s",
            (dropped, elapsed, by_level, by_logger),
            None,
        )
        summary.__dict__.update(dropped=dropped, dropped_by_level=dict(self._dropped_by_level))
        self._dropped_by_level.clear()
        self._dropped_by_logger.clear()
        self.target.handle(summary)


def _repeat_key(record: logging.LogRecord) -> _RepeatKey:
    """Lines are repeats when logger, level, text and extra fields all match."""
    fields = record.__dict__
    if len(fields) == len(_PLAIN_RECORD_ATTRIBUTES):  # nothing added: skip building a set
        return (record.name, record.levelno, record.getMessage(), ())
    extras = tuple(sorted((name, repr(fields[name])) for name in fields.keys() - _STANDARD_ATTRIBUTES))
    return (record.name, record.levelno, record.getMessage(), extras)
