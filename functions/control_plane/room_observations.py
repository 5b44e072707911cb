"""What LiveKit says about rooms (webhooks, the sweep's room listing, a room found gone),
recorded into the room records, which are then reconciled."""

from __future__ import annotations

import logging
from enum import StrEnum
from functools import partial

from control_plane.events import EventType, LiveKitEvent
from control_plane.ports import LiveRoom, Ports
from control_plane.reconcile import Policy
from control_plane.room import CloseReason, Room, observe_room_finished, observe_room_started
from control_plane.room_loop import RoomLoop
from control_plane.room_records import RoomRecords

log = logging.getLogger(__name__)


class EventOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    STALE_SESSION = "stale_session"


class RoomObservations:
    def __init__(
        self, ports: Ports, policy: Policy, records: RoomRecords, loop: RoomLoop, event_ttl_seconds: int
    ) -> None:
        self._ports = ports
        self._policy = policy
        self._records = records
        self._loop = loop
        self._event_ttl = event_ttl_seconds

    def handle_event(self, event: LiveKitEvent) -> EventOutcome:
        """Record what a webhook observed, then reconcile. Safe to call twice with one event."""
        if event.type is None or event.room is None:
            log.info("webhook ignored", extra={"event": event.event, "event_id": event.id})
            return EventOutcome.IGNORED
        change = event.participant_change()
        if event.type in (EventType.PARTICIPANT_JOINED, EventType.PARTICIPANT_LEFT) and change is None:
            log.info("non-human participant ignored", extra={"event": event.event, "room": event.room.name})
            return EventOutcome.IGNORED
        now = self._ports.clock.now()
        if not self._ports.rooms.claim_event(event.id, int(now), int(now) + self._event_ttl):
            log.info("duplicate webhook", extra={"event_id": event.id, "room": event.room.name})
            self._ports.metrics.count("WebhookDuplicates")
            return EventOutcome.DUPLICATE
        try:
            return self._apply(event, now)
        except Exception:
            # Let LiveKit's retry through: the dedupe record must not swallow an event we failed.
            self._ports.rooms.release_event(event.id)
            raise

    def room_gone(self, name: str, sid: str, reason: CloseReason = CloseReason.SWEPT) -> Room | None:
        """LiveKit no longer has session ``sid`` of the room: its room_finished was missed (the
        sweep's find), or an operator deleted it. Only that session ends; a room that moved on
        to another session is left alone."""
        now = self._ports.clock.now()

        def finish(room: Room | None) -> Room | None:
            if room is None or room.sid != sid:
                return room
            return observe_room_finished(room, name, sid, room.session_created_at, now, reason)

        self._records.mutate(name, finish)
        return self._loop.reconcile(name)

    def observe_live_room(self, live: LiveRoom) -> Room | None:
        """What LiveKit's room list shows, recorded the way a ``room_started`` webhook is
        (ordered by creation time, so a listing never rolls a room back); None if stale."""
        now = self._ports.clock.now()
        return self._records.mutate(
            live.name,
            lambda r: observe_room_started(
                r, live.name, live.sid, live.created_at, live.departure_timeout, now
            ),
        )

    def _apply(self, event: LiveKitEvent, now: float) -> EventOutcome:
        assert event.room is not None
        info = event.room
        name = info.name
        change = event.participant_change()
        if change is not None:
            room = self._ports.rooms.observe_participant(change)
            if room.sid != change.room_sid:
                return self._stale(event, room)
            log.info(
                f"participant {change.kind.value}",
                extra={
                    "room": name,
                    "participant_sid": change.sid,
                    "identity": change.identity,
                    "humans": len(room.humans),
                },
            )
            self._loop.reconcile(name, room)
            return EventOutcome.APPLIED
        if event.type is EventType.ROOM_STARTED:
            if info.departure_timeout < self._policy.grace_seconds:
                log.warning(
                    "room departure_timeout shorter than grace period: LiveKit will close the room first",
                    extra={
                        "room": name,
                        "departure_timeout": info.departure_timeout,
                        "grace": self._policy.grace_seconds,
                    },
                )
                self._ports.metrics.count("ShortDepartureTimeoutRooms")
            observe = partial(
                observe_room_started,
                name=name,
                sid=info.sid,
                created_at=info.created_at,
                departure_timeout=info.departure_timeout,
                now=now,
            )
        else:
            observe = partial(
                observe_room_finished, name=name, sid=info.sid, created_at=info.created_at, now=now
            )
        stale = False

        def record(room: Room | None) -> Room | None:
            nonlocal stale
            observed = observe(room)
            stale = room is not None and observed is None
            return observed

        after = self._records.mutate(name, record)
        if stale:
            return self._stale(event, after or self._ports.rooms.get(name))
        self._loop.reconcile(name)
        return EventOutcome.APPLIED

    def _stale(self, event: LiveKitEvent, room: Room | None) -> EventOutcome:
        """An event of a session the room has left behind: recorded as seen, changes nothing."""
        log.info(
            "webhook of an earlier room session ignored",
            extra={
                "room": event.room.name if event.room else None,
                "event_sid": event.room.sid if event.room else None,
                "room_sid": room.sid if room else None,
            },
        )
        self._ports.metrics.count("StaleSessionEvents")
        return EventOutcome.STALE_SESSION
