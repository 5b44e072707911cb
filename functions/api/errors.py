"""What the API's logic raises; ``handlers/api.py`` maps each to a status and a body that says
what to do next. LiveKit outages are the core's own ``LiveKitUnavailable`` (503)."""

from __future__ import annotations


class RoomNotFound(Exception):
    """No record of the room: it never had a human, or DynamoDB's TTL removed its history."""

    def __init__(self, room: str) -> None:
        super().__init__(f"room {room!r} is not tracked")
        self.room = room


class BadCursor(ValueError):
    """A ``cursor`` this API did not hand out (or one for another listing)."""


class LiveKitRefused(Exception):
    """LiveKit answered a 4xx (credentials, grants, arguments): retrying will not help."""


class PoolExhausted(Exception):
    """No free slot and the pool is at ``MAX_TASKS``: the agent could not be had now."""

    def __init__(self, room: str, retry_after: int) -> None:
        super().__init__(f"no agent capacity for room {room!r}: the pool is at MAX_TASKS")
        self.room = room
        self.retry_after = retry_after
