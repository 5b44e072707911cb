"""The stack's readable timeline: one line per thing that happened, from every part of it.

Webhooks and API calls (the HTTP server), timer messages (the queue poller), sweeps, task
launches and exits (the runner), the control plane's own decisions (its structured log records,
picked up by :class:`TimelineLogHandler`) and room states (the table watcher) all land here.
Lines go to a stream (the ``lkctl dev`` terminal) and stay in a bounded buffer for the live page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, TextIO

MAX_LINES = 500
# Control-plane log records that add nothing a timeline reader needs (the watcher and the
# runner already show what they report).
QUIET_MESSAGES = frozenset(
    {
        "task state recorded",
        "older or repeated task event: worker record kept",
        "participant joined",
        "participant left",
        "room transition",
        "sweep done",
        "non-human participant ignored",
    }
)
# Structured-log fields worth showing, in this order, and how to shorten them.
SHOWN_FIELDS = ("room", "task_arn", "dispatch_id", "reason", "error", "outcome", "attempt", "delay")


@dataclass(frozen=True)
class Entry:
    at: float
    """Seconds since the stack started."""
    source: str
    text: str
    room: str | None = None
    """The room the line is about, if one: the page's room view shows that room's lines."""

    def line(self) -> str:
        return f"[{self.at:6.1f}s] {self.source:<8} {self.text}"


class Timeline:
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque(maxlen=MAX_LINES)

    def emit(self, source: str, text: str, room: str | None = None) -> None:
        entry = Entry(round(time.monotonic() - self._started, 1), source, text, room)
        with self._lock:
            self._entries.append(entry)
            if self._out is not None:
                self._out.write(entry.line() + "\n")
                self._out.flush()

    def attach(self, out: TextIO) -> None:
        """Write to ``out`` from now on, starting with what happened so far."""
        with self._lock:
            for entry in self._entries:
                out.write(entry.line() + "\n")
            out.flush()
            self._out = out

    def recent(self, count: int = 60) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(entry) for entry in list(self._entries)[-count:]]

    def for_room(self, room: str) -> list[dict[str, Any]]:
        """Every line still held that is about ``room``, oldest first."""
        with self._lock:
            return [asdict(entry) for entry in self._entries if entry.room == room]

    def since_start(self, at: float) -> float:
        """Epoch seconds ``at`` as the timeline's seconds since the stack started."""
        return round(at - (time.time() - (time.monotonic() - self._started)), 1)


def short_task(task_arn: str | None) -> str:
    """``task 1f3a9c2e`` for a task ARN: the first characters of its id."""
    return "-" if not task_arn else task_arn.rsplit("/", 1)[-1][:8]


class TimelineLogHandler(logging.Handler):
    """Turns the functions' log records (INFO and up) into timeline lines."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(logging.INFO)
        self._timeline = timeline

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message in QUIET_MESSAGES:
            return
        details = []
        for name in SHOWN_FIELDS:
            value = record.__dict__.get(name)
            if value in (None, ""):
                continue
            details.append(f"task {short_task(str(value))}" if name == "task_arn" else f"{name} {value}")
        level = "" if record.levelno <= logging.INFO else f"{record.levelname}: "
        suffix = f" ({', '.join(details)})" if details else ""
        room = record.__dict__.get("room")
        self._timeline.emit("control", f"{level}{message}{suffix}", room if isinstance(room, str) else None)
