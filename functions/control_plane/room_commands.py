"""Operator and app commands (the HTTP API and the sweep): create a room, reserve a joining
human's place, close a room's agent, retire an old one, reset a crash loop."""

from __future__ import annotations

import logging

from control_plane import reconcile
from control_plane.ports import LiveRoom, Ports, VersionConflict
from control_plane.reconcile import Policy
from control_plane.room import CloseReason, Room, clear_failure, expect_human, observe_room_started
from control_plane.room_loop import RoomLoop
from control_plane.room_records import MAX_ROUNDS, RoomRecords

log = logging.getLogger(__name__)


class RoomCommands:
    def __init__(
        self, ports: Ports, policy: Policy, records: RoomRecords, loop: RoomLoop, departure_timeout: int
    ) -> None:
        self._ports = ports
        self._policy = policy
        self._records = records
        self._loop = loop
        self._departure_timeout = departure_timeout

    def create_room(self, name: str) -> LiveRoom:
        """Create a LiveKit room that outlives our grace period (LiveKit's default is 20 s)."""
        return self._ports.livekit.create_room(
            name, departure_timeout=self._departure_timeout, empty_timeout=self._departure_timeout
        )

    def expect_human(self, live: LiveRoom, identity: str, until: float) -> Room | None:
        """The join API handed ``identity`` a token for LiveKit session ``live``: record the
        session as a ``room_started`` webhook would, reserve the human's place
        (:func:`control_plane.room.expect_human`), and reconcile, so the agent is asked for
        before LiveKit has seen the human. A listing older than the record reserves nothing."""
        now = self._ports.clock.now()
        # LiveKit closes the room departure_timeout after the human leaves (at the earliest
        # now): a deadline (reservation end + grace) past that would outlive the room. Rooms we
        # create cover the whole reservation; one created elsewhere with less caps it.
        until = min(until, now + max(0, live.departure_timeout - self._policy.grace_seconds))

        def reserve(room: Room | None) -> Room | None:
            observed = observe_room_started(
                room, live.name, live.sid, live.created_at, live.departure_timeout, now
            )
            return None if observed is None else expect_human(observed, identity, until, now)

        self._records.mutate(live.name, reserve)
        return self._loop.reconcile(live.name)

    def force_close(self, name: str) -> Room | None:
        """An operator's close: remove the agent now (``reconcile.force_stop``), then reconcile.
        Idempotent: a room with no agent, or one already stopping, is only reconciled. Humans
        still in the room get a fresh agent. None if the room is unknown."""
        if self._stop_agent(name, None, "closed by an operator"):
            self._ports.metrics.count("AgentsClosedByOperator")
        return self._loop.reconcile(name)

    def retire_agent(self, name: str, launch_token: str) -> Room | None:
        """The sweep found the room's agent (``launch_token``) past ``MAX_AGENT_AGE_SECONDS`` on a
        worker younger agents of other rooms still use: remove that agent alone (its dispatch,
        so its job ends; its slot); humans still there get a fresh one. A newer agent is kept."""
        if self._stop_agent(name, launch_token, "agent past its maximum age", CloseReason.AGENT_MAX_AGE):
            self._ports.metrics.count("AgentsRetired", dimensions={"Reason": "max_age"})
        return self._loop.reconcile(name)

    def _stop_agent(
        self, name: str, launch_token: str | None, why: str, reason: CloseReason = CloseReason.FORCE_CLOSED
    ) -> bool:
        """Remove the room's agent now (``reconcile.force_stop``), if it is still the one named
        (any, without a token); whether this call removed it."""
        rooms = self._ports.rooms
        current = rooms.get(name)
        for _ in range(MAX_ROUNDS):
            if current is None or current.agent is None:
                return False
            if launch_token is not None and current.agent.launch_token != launch_token:
                return False
            decision = reconcile.force_stop(current, self._ports.clock.now(), why, reason)
            if decision is None:
                return False
            try:
                self._loop.carry_out(current, decision)
            except VersionConflict:
                current = rooms.get(name)
                continue
            return True
        return False

    def reset_failed(self, name: str) -> Room | None:
        """An operator's reset: forget a crash loop and launch backoff
        (:func:`control_plane.room.clear_failure`) so the humans there, or the next to join,
        get an agent. None if the room is unknown."""
        after = self._records.mutate(name, lambda room: clear_failure(room) if room is not None else None)
        if after is None:
            return None
        log.info("room reset by an operator", extra={"room": name, "state": after.state.value})
        return self._loop.reconcile(name, after)

    def dispatch_replaced(self, name: str, old_dispatch_id: str, new_dispatch_id: str | None) -> Room | None:
        """The recorded dispatch was deleted: adopt the one kept, or none (dispatch again)."""
        now = self._ports.clock.now()
        return self._records.record(
            name, lambda r: reconcile.record_dispatch_replaced(r, old_dispatch_id, new_dispatch_id, now)
        )
