"""Versioned read-modify-write of room records: how every trigger writes what it saw or did."""

from __future__ import annotations

from collections.abc import Callable

from control_plane.ports import Clock, RoomStore, VersionConflict
from control_plane.room import Room

MAX_ROUNDS = 6


class RoomRecords:
    def __init__(self, rooms: RoomStore, clock: Clock) -> None:
        self._rooms = rooms
        self._clock = clock

    def record(self, name: str, change: Callable[[Room], Room | None]) -> Room | None:
        """Write an effect's result into the room; None if the room moved on without it."""
        return self.mutate(name, lambda current: change(current) if current is not None else None)

    def mutate(self, name: str, change: Callable[[Room | None], Room | None]) -> Room | None:
        """Versioned read-modify-write, retried on conflict; creates the room if it is new."""
        rooms = self._rooms
        for _ in range(MAX_ROUNDS):
            current = rooms.get(name)
            updated = change(current)
            if updated is None or updated == current:
                return current if updated is not None else None
            try:
                if current is None:
                    return rooms.create(updated)
                return rooms.save(
                    updated.model_copy(update={"updated_at": self._clock.now()}), current.version
                )
            except VersionConflict:
                continue
        raise VersionConflict(f"room {name} is too contended to update")
