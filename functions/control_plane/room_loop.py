"""The reconcile loop: decide on the stored room, send harmless messages, save with a version
condition, and only if the save won perform the claimed effects (:mod:`control_plane.effects`).
A lost save means another Lambda acted: re-read, decide again."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from control_plane import reconcile
from control_plane.capacity import Capacity
from control_plane.effects import Effects
from control_plane.ports import Ports, VersionConflict
from control_plane.reconcile import Decision, Policy, World
from control_plane.room import Room
from control_plane.room_records import MAX_ROUNDS
from control_plane.worker_protocol import GraceExpired, WorkerRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerListing:
    """Workers as listed once by a caller judging many rooms (the sweep): by task ARN, and
    whether any of them had a free slot."""

    workers: Mapping[str, WorkerRecord]
    slot_open: bool


class RoomLoop:
    def __init__(self, ports: Ports, policy: Policy, capacity: Capacity, effects: Effects) -> None:
        self._ports = ports
        self._policy = policy
        self._capacity = capacity
        self._effects = effects

    def reconcile(self, name: str, room: Room | None = None) -> Room | None:
        try:
            return self._reconcile(name, room)
        finally:
            self._effects.refill_pool()

    def _reconcile(self, name: str, room: Room | None) -> Room | None:
        rooms = self._ports.rooms
        current = room if room is not None else rooms.get(name)
        for _ in range(MAX_ROUNDS):
            if current is None:
                return None
            now = self._ports.clock.now()
            self._effects.note_listing(None)  # a listing is good for the round it was taken in only
            decision = reconcile.decide(current, self._observe(current, now), now, self._policy)
            if decision is None:
                return current
            try:
                current = self.carry_out(current, decision)
            except VersionConflict:
                current = rooms.get(name)
        log.warning("reconcile did not settle", extra={"room": name, "rounds": MAX_ROUNDS})
        return current

    def carry_out(self, current: Room, decision: Decision) -> Room | None:
        """Send the decision's timers, save its room over ``current`` (VersionConflict if another
        writer came first) and, the save won, perform its effects; returns the room after them."""
        for timer in decision.before_save:
            self._ports.timers.send(
                GraceExpired(room=current.name, generation=timer.generation), timer.delay_seconds
            )
        saved = self._ports.rooms.save(decision.room, expected_version=current.version)
        self._log_transition(current, saved, decision)
        if reconcile.grace_cancelled(current, saved):
            self._ports.metrics.count("GraceCancelled")
        return self._effects.perform(saved, decision)

    def settled(self, room: Room, listing: WorkerListing | None = None) -> bool:
        """Whether ``reconcile`` would leave this snapshot as it is, judged without any read.

        A room waiting on a worker needs the workers: without ``listing`` it is never settled
        here; with one (the sweep's) it is settled only if that listing shows nothing that could
        move it (its worker ready, a slot open anywhere): anything else gets a real reconcile,
        which reads afresh. So a sweep costs such rooms no worker listing each, only a slot that
        opened after its own listing waits for the wake that opening sends, or the next sweep.
        """
        world = World()
        if reconcile.needs_worker_check(room):
            if listing is None:
                return False
            world = self._listed_world(room, listing)
            if world.worker_ready or world.slot_open:
                return False
        return reconcile.decide(room, world, self._ports.clock.now(), self._policy) is None

    def _listed_world(self, room: Room, listing: WorkerListing) -> World:
        """``_observe`` on a listing taken earlier, for :meth:`settled`."""
        agent = room.agent
        assert agent is not None
        own = listing.workers.get(agent.task_arn) if agent.task_arn else None
        if not agent.slot_reserved or agent.task_arn is None:
            return World(slot_open=listing.slot_open, own_task_taken=self._taken_by_others(room, own))
        ready = own is not None and own.is_ready(self._ports.clock.now(), self._policy.worker_stale_seconds)
        return World(worker_ready=ready)

    def _observe(self, room: Room, now: float) -> World:
        if not reconcile.needs_worker_check(room):
            return World()
        agent = room.agent
        assert agent is not None
        if not agent.slot_reserved or agent.task_arn is None:
            own = self._capacity.own_task(agent.task_arn)
            listed = self._capacity.candidates(room.name, own)
            self._effects.note_listing(room.name, listed)  # the slot attempt this round decides on
            return World(slot_open=bool(listed), own_task_taken=self._taken_by_others(room, own))
        worker = self._ports.workers.get_worker(agent.task_arn)
        ready = worker is not None and worker.is_ready(now, self._policy.worker_stale_seconds)
        return World(worker_ready=ready)

    def _taken_by_others(self, room: Room, own: WorkerRecord | None) -> bool:
        """The room's own task has no slot left for it: other rooms fill every one."""
        return (
            own is not None
            and bool(own.rooms() - {room.name})
            and own.free_slots(self._capacity.policy.jobs_per_task) == 0
        )

    def _log_transition(self, before: Room, after: Room, decision: Decision) -> None:
        log.info(
            "room transition",
            extra={
                "room": after.name,
                "room_sid": after.sid,
                "from_state": before.state.value,
                "to_state": after.state.value,
                "reasons": list(decision.reasons),
                "version": after.version,
                "humans": len(after.humans),
            },
        )
