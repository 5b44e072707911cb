"""The effects a won save claimed (``reconcile.AcquireSlot``, ``EnsureDispatch``,
``RemoveAgent``), carried out against the ports and recorded into the room."""

from __future__ import annotations

import json
import logging
import math
import threading

from control_plane import reconcile
from control_plane.capacity import Capacity, LaunchBlocked, with_slot
from control_plane.ports import Dispatch, LaunchFailed, LaunchOutcomeUnknown, LiveKitGateway, Ports
from control_plane.reconcile import AcquireSlot, Decision, EnsureDispatch, Policy, RemoveAgent, RoomEffect
from control_plane.room import Room
from control_plane.room_records import RoomRecords
from control_plane.worker_protocol import Respawn, WorkerRecord

log = logging.getLogger(__name__)

# Retry delay after a RunTask whose outcome is unknown; the retry first looks the token up.
UNKNOWN_LAUNCH_RETRY_SECONDS = 10


def our_dispatches(livekit: LiveKitGateway, room_name: str, agent_name: str) -> list[Dispatch]:
    """The room's dispatches for our agent; other agents' dispatches are never touched."""
    return [d for d in livekit.list_dispatches(room_name) if d.agent_name == agent_name]


class Effects:
    def __init__(self, ports: Ports, policy: Policy, capacity: Capacity, records: RoomRecords) -> None:
        self._ports = ports
        self._policy = policy
        self._capacity = capacity
        self._records = records
        # The worker listing a round's decision was made on, for its slot attempt (per thread:
        # the sweep shares one controller between threads).
        self._listed = threading.local()
        # The pool's top-up owed for a slot taken this reconcile (:meth:`refill_pool`), per thread.
        self._refill = threading.local()

    def note_listing(self, room: str | None, listed: list[WorkerRecord] | None = None) -> None:
        """The listing this thread's round decided ``room`` on (None: none), for its slot attempt."""
        self._listed.value = (room, listed) if room is not None and listed is not None else None

    def perform(self, room: Room, decision: Decision) -> Room | None:
        result: Room | None = room
        for effect in decision.effects:
            try:
                if isinstance(effect, AcquireSlot):
                    result = self._acquire(room, effect)
                elif isinstance(effect, EnsureDispatch):
                    result = self._dispatch(room, effect)
                else:
                    result = self._remove(room, effect)
            except Exception:
                self._release(room.name, effect)
                raise
        return result

    def _release(self, name: str, effect: RoomEffect) -> None:
        """Best effort: if even this fails, the claim simply expires after the lease."""
        try:
            self._records.record(name, lambda r: reconcile.release_claim(r, effect))
        except Exception:
            log.exception("could not release a failed claim", extra={"room": name})

    def _acquire(self, room: Room, effect: AcquireSlot) -> Room | None:
        """A slot on a ready worker if one is free; else (``launch``) capacity for the room."""
        capacity = self._capacity
        token = effect.launch_token
        if effect.first:
            self._ports.workers.count_arrival(self._now())
        if effect.takeover:
            found = self._ports.runner.find_launched(token)
            if found:
                return self._records.record(room.name, lambda r: reconcile.record_launch(r, token, found))
        observed, self._listed.value = getattr(self._listed, "value", None), None
        prefer = room.agent.task_arn if room.agent is not None else None
        workers = (
            observed[1]
            if observed is not None and observed[0] == room.name
            else capacity.candidates(room.name, capacity.own_task(prefer))
        )
        task_arn = capacity.take_slot(room.name, prefer, workers)
        if task_arn is not None:
            after = self._records.record(room.name, lambda r: reconcile.record_slot(r, token, task_arn))
            if after is None:
                jobs_per_task = capacity.policy.jobs_per_task
                self._ports.workers.release_slot(task_arn, room.name, jobs_per_task, unassign=True)
                return None
            self._ports.workers.remove_waiting(room.name)
            self._ports.metrics.count("SlotsTaken")
            # The pool tops up once the room is reconciled: its dispatch must not wait for RunTask.
            self._refill.value = (room.name, task_arn)
            return after
        if not effect.launch:
            self._ports.workers.put_waiting(room.name, self._now())
            return self._records.record(room.name, lambda r: reconcile.record_no_slot(r, token))
        return self._launch(room, token)

    def refill_pool(self) -> None:
        """Replace the slot this thread's reconcile took (:meth:`_acquire`), after its dispatch."""
        pending, self._refill.value = getattr(self._refill, "value", None), None
        if pending is None:
            return
        room, task_arn = pending
        try:
            pool = self._ports.workers.pool_workers()
            self._capacity.replenish(with_slot(pool, task_arn, room, self._now()))
        except Exception:  # the room has its slot; the pool tops up on the next wake or sweep
            log.exception("pool could not be replenished", extra={"room": room})

    def _launch(self, room: Room, token: str) -> Room | None:
        record = self._records.record
        # Waiting from here on: a slot another worker frees before this launch is ready wakes it.
        self._ports.workers.put_waiting(room.name, self._now())
        try:
            launched = self._capacity.launch_for_room(room.name, token)
        except LaunchOutcomeUnknown as error:
            # ECS may have started it: keep the token, its claim expiring in a few seconds, so
            # the retry finds the task with ``find_launched`` before it launches anything.
            log.warning("task launch outcome unknown", extra={"room": room.name, "error": str(error)})
            self._ports.metrics.count("TaskLaunchOutcomeUnknown")
            retry_at = self._now() + UNKNOWN_LAUNCH_RETRY_SECONDS
            after = record(
                room.name, lambda r: reconcile.defer_launch_takeover(r, token, retry_at, self._policy)
            )
            self._ports.timers.send(
                Respawn(room=room.name, attempt=room.launches), UNKNOWN_LAUNCH_RETRY_SECONDS
            )
            return after
        except LaunchFailed as error:
            log.error("task launch failed", extra={"room": room.name, "error": str(error)})
            self._ports.metrics.count("TaskLaunchFailures")
            after = record(room.name, lambda r: reconcile.record_launch_failed(r, token, self._now()))
            if after is not None:
                delay = reconcile.launch_backoff_seconds(after.launch_failures)
                self._ports.timers.send(Respawn(room=room.name, attempt=after.launch_failures), delay)
            return after
        if isinstance(launched, LaunchBlocked):
            retry_at = self._now() + launched.retry_after
            after = record(
                room.name, lambda r: reconcile.record_launch_queued(r, token, retry_at, self._policy)
            )
            self._ports.timers.send(
                Respawn(room=room.name, attempt=room.launches), max(1, math.ceil(launched.retry_after))
            )
            return after
        self._ports.metrics.count("AgentTasksLaunched")
        log.info("task launched", extra={"room": room.name, "task_arn": launched.task_arn})
        after = record(room.name, lambda r: reconcile.record_launch(r, token, launched.task_arn))
        if after is None:
            log.warning(
                "launched task no longer wanted", extra={"room": room.name, "task_arn": launched.task_arn}
            )
            self._ports.workers.remove_waiting(room.name)
            self._capacity.release(room.name, launched.task_arn, slot_reserved=False)
        return after

    def _dispatch(self, room: Room, effect: EnsureDispatch) -> Room | None:
        kept = (
            self._ensure_one_dispatch(room.name, effect.launch_token)
            if effect.takeover
            else self._create_dispatch(room.name, effect.launch_token)
        )
        after = self._records.record(
            room.name,
            lambda r: reconcile.record_dispatch(r, effect.launch_token, kept.dispatch_id, self._now()),
        )
        if after is None:
            log.warning(
                "dispatch no longer wanted", extra={"room": room.name, "dispatch_id": kept.dispatch_id}
            )
            self._ports.livekit.delete_dispatch(room.name, kept.dispatch_id)
            return None
        agent = after.agent
        if agent is not None and agent.wanted_at is not None and agent.dispatched_at is not None:
            waited = max(0.0, agent.dispatched_at - agent.wanted_at)
            self._ports.metrics.count("JoinToDispatchSeconds", waited, unit="Seconds")
        return after

    def _create_dispatch(self, room_name: str, token: str) -> Dispatch:
        """A first claim: no dispatch of this agent can exist yet (every earlier agent's were
        deleted with it, and an unrecorded create leaves the claim set: a takeover), so one
        ``CreateDispatch`` and no listing."""
        created = self._ports.livekit.create_dispatch(
            room_name, self._policy.agent_name, json.dumps({"launch_token": token, "room": room_name})
        )
        self._ports.metrics.count("DispatchesCreated")
        log.info("dispatch created", extra={"room": room_name, "dispatch_id": created.dispatch_id})
        return created

    def _ensure_one_dispatch(self, room_name: str, token: str) -> Dispatch:
        """Reuse a dispatch for our agent if one exists, delete extras, create one only if none."""
        livekit = self._ports.livekit
        ours = our_dispatches(livekit, room_name, self._policy.agent_name)
        if not ours:
            return self._create_dispatch(room_name, token)
        ours.sort(key=lambda d: (d.has_running_job, d.created_at), reverse=True)
        keep, extras = ours[0], ours[1:]
        for extra in extras:
            livekit.delete_dispatch(room_name, extra.dispatch_id)
            self._ports.metrics.count("DuplicateDispatchesDeleted")
            log.warning(
                "duplicate dispatch deleted", extra={"room": room_name, "dispatch_id": extra.dispatch_id}
            )
        return keep

    def _remove(self, room: Room, effect: RemoveAgent) -> Room | None:
        livekit = self._ports.livekit
        # Listed, not only the recorded id: a dispatch whose "no longer wanted" delete failed
        # runs unrecorded, and this is where it ends (the tests/sim faulty day shows it).
        ours = {d.dispatch_id for d in our_dispatches(livekit, room.name, self._policy.agent_name)}
        if effect.dispatch_id:
            ours.add(effect.dispatch_id)
        for dispatch_id in sorted(ours):
            livekit.delete_dispatch(room.name, dispatch_id)
        # Off the waiting list first: its own task is no longer held for it, so release judges it.
        self._ports.workers.remove_waiting(room.name)
        if effect.task_arn:
            self._capacity.release(room.name, effect.task_arn, effect.slot_reserved)
        self._ports.metrics.count("AgentsRemoved")
        log.info(
            "agent removed",
            extra={"room": room.name, "task_arn": effect.task_arn, "dispatches_deleted": len(ours)},
        )
        return self._records.record(
            room.name, lambda r: reconcile.record_removed(r, self._now(), self._policy)
        )

    def _now(self) -> float:
        return self._ports.clock.now()
