"""Carries out ``reconcile.decide`` against the ports: the only place effects happen.

Every trigger ends in :meth:`RoomController.reconcile`. The loop is: decide, send harmless
messages, save with a version condition, and only if the save won perform the claimed
effect and record its result. A lost save means another Lambda acted: re-read, decide again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from control_plane import reconcile
from control_plane.capacity import Capacity, LaunchBlocked, with_slot
from control_plane.events import EventType, LiveKitEvent
from control_plane.pool import PoolPolicy
from control_plane.ports import (
    Dispatch,
    LaunchFailed,
    LaunchOutcomeUnknown,
    LiveRoom,
    Ports,
    VersionConflict,
)
from control_plane.reconcile import (
    AcquireSlot,
    Decision,
    EnsureDispatch,
    Policy,
    RemoveAgent,
    RoomEffect,
    World,
)
from control_plane.room import (
    CloseReason,
    Room,
    clear_failure,
    expect_human,
    observe_room_finished,
    observe_room_started,
)
from control_plane.worker_protocol import (
    GraceExpired,
    JobEnded,
    JobFailureReason,
    JobOutcome,
    JobStarted,
    Respawn,
    TimerMessage,
    WakeRooms,
    WorkerReady,
    WorkerRecord,
    agent_identity,
)

log = logging.getLogger(__name__)

MAX_ROUNDS = 6
# A grace timer this close to its deadline acts now instead of re-arming for the remainder.
TIMER_SLACK_SECONDS = 1.0
# Retry delay after a RunTask whose outcome is unknown; the retry first looks the token up.
UNKNOWN_LAUNCH_RETRY_SECONDS = 10


class EventOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    STALE_SESSION = "stale_session"


@dataclass(frozen=True)
class WorkerListing:
    """Workers as listed once by a caller judging many rooms (the sweep): by task ARN, and
    whether any of them had a free slot."""

    workers: Mapping[str, WorkerRecord]
    slot_open: bool


class RoomController:
    def __init__(
        self,
        ports: Ports,
        policy: Policy,
        departure_timeout: int,
        event_ttl_seconds: int,
        pool: PoolPolicy | None = None,
    ) -> None:
        self._ports = ports
        self._policy = policy
        self._departure_timeout = departure_timeout
        self._event_ttl = event_ttl_seconds
        self.capacity = Capacity(ports, pool or PoolPolicy(worker_stale_seconds=policy.worker_stale_seconds))
        # The worker listing a round's decision was made on, for its slot attempt (per thread:
        # the sweep shares one controller between threads).
        self._listed = threading.local()
        # The pool's top-up owed for a slot taken this reconcile (:meth:`_refill_pool`), per thread.
        self._refill = threading.local()

    # --- triggers -------------------------------------------------------------------------

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

    def handle_timer(self, message: TimerMessage) -> Room | None:
        if isinstance(message, GraceExpired):
            room = self._ports.rooms.get(message.room)
            if room is None or room.grace is None or room.grace.generation != message.generation:
                log.info("stale grace timer", extra={"room": message.room, "generation": message.generation})
            elif (early := room.grace.deadline - self._now()) > TIMER_SLACK_SECONDS:
                # SQS delays are whole seconds and may fire early: re-arm rather than waste it.
                self._ports.timers.send(message, math.ceil(early))
                log.info("grace timer early: re-armed", extra={"room": message.room, "seconds": early})
                return room
            return self.reconcile(message.room, room)
        if isinstance(message, WorkerReady):
            return self.worker_ready(message)
        if isinstance(message, JobStarted):
            return self.job_started(message)
        if isinstance(message, JobEnded):
            return self.job_ended(message)
        if isinstance(message, WakeRooms):
            self.wake_waiting()
            return None
        assert isinstance(message, Respawn)
        return self.reconcile(message.room)

    def worker_ready(self, message: WorkerReady) -> Room | None:
        """A worker can take rooms: the room it was launched for first, then those waiting."""
        # livekit-agents registers again on every reconnect and the worker re-sends WorkerReady:
        # only the first one per task (``ready_at`` set once) is a cold-start sample.
        jobs_per_task = self.capacity.policy.jobs_per_task
        worker = self._ports.workers.mark_ready(message.task_arn, self._now(), jobs_per_task)
        cold_start = None
        if worker is not None and worker.launched_at is not None:
            cold_start = max(0.0, self._now() - worker.launched_at)
            self._ports.workers.record_cold_start(cold_start)
            self._ports.metrics.count("WorkerColdStartSeconds", cold_start, unit="Seconds")
        log.info(
            "worker ready",
            extra={"task_arn": message.task_arn, "room": message.room, "cold_start_seconds": cold_start},
        )
        room = self.reconcile(message.room) if message.room else None
        self.wake_waiting()
        return room

    def wake_waiting(self) -> None:
        """Give opened slots to the rooms waiting longest, then top the pool up."""
        capacity = self.capacity
        # No open slot at all (every worker busy, a common steady state): no waiting room can
        # take one, so none is judged, which would query the slot index once per room.
        for name in capacity.waiting() if capacity.slot_open() else ():
            if not capacity.slot_open(name):
                continue
            try:
                after = self.reconcile(name)
            except Exception:  # one room's LiveKit or ECS trouble must not hold the others back
                log.exception("waiting room could not take a slot now", extra={"room": name})
                continue
            if after is None or not reconcile.waiting_for_slot(after):
                self._ports.workers.remove_waiting(name)
        capacity.replenish()

    def job_started(self, message: JobStarted) -> Room | None:
        """A worker took a room's job: record where the agent lives; move the slot if LiveKit
        chose another worker than the one whose slot was reserved.

        A claim that would change the record (a new job or task) is first confirmed with
        LiveKit (:meth:`_job_confirmed`), one dispatch listing: a compromised task may report
        another room's job as its own, to move that room's agent onto itself and then kill it
        with its own crash. A repeated report changes nothing and costs no LiveKit call."""
        before = self._ports.rooms.get(message.room)
        claimed = (
            reconcile.record_job_started(before, message.task_arn, message.room_sid, message.job_id)
            if before is not None
            else None
        )
        if claimed is not None and claimed != before and not self._job_confirmed(message):
            log.warning(
                "job start not confirmed by LiveKit: ignored",
                extra={"room": message.room, "task_arn": message.task_arn, "job_id": message.job_id},
            )
            self._ports.metrics.count("JobReportsUnconfirmed")
            return before
        after = self._record(
            message.room,
            lambda r: reconcile.record_job_started(r, message.task_arn, message.room_sid, message.job_id),
        )
        extra = {"room": message.room, "task_arn": message.task_arn, "job_id": message.job_id}
        if after is None:
            log.warning("job started for an agent the room no longer has", extra=extra)
            return before
        log.info("agent job started", extra=extra)
        previous = before.agent.task_arn if before is not None and before.agent is not None else None
        if previous is not None and previous != message.task_arn:
            displaced = self.capacity.job_moved(message.room, previous, message.task_arn)
            if displaced is not None:
                moved = self._record(
                    displaced, lambda r: reconcile.record_slot_moved(r, message.task_arn, previous)
                )
                if moved is None:
                    jobs_per_task = self.capacity.policy.jobs_per_task
                    self._ports.workers.release_slot(previous, displaced, jobs_per_task, unassign=True)
        return after

    def _job_confirmed(self, message: JobStarted) -> bool:
        """LiveKit says so: one of the room's dispatches for our agent holds the job, and the
        worker that took it accepted it as this task (:func:`agent_identity`)."""
        identity = agent_identity(message.job_id, message.task_arn)
        return any(
            job.job_id == message.job_id and job.participant_identity == identity
            for dispatch in self._our_dispatches(message.room)
            for job in dispatch.jobs
        )

    def create_room(self, name: str) -> LiveRoom:
        """Create a LiveKit room that outlives our grace period (LiveKit's default is 20 s)."""
        return self._ports.livekit.create_room(
            name, departure_timeout=self._departure_timeout, empty_timeout=self._departure_timeout
        )

    def task_stopped(self, name: str, task_arn: str, launch_token: str | None, crashed: bool) -> Room | None:
        """ECS says the room's task is gone: remove the agent, and relaunch (after a backoff
        if it crashed) or mark the room failed after too many crashes. None if not ours."""
        now = self._now()
        policy = self._policy
        after = self._record(
            name, lambda r: reconcile.record_task_stopped(r, task_arn, launch_token, crashed, now, policy)
        )
        if after is None:
            return None
        counted = bool(after.crashes) and after.crashes[-1] == now
        lost = crashed and after.agent is not None and reconcile.lost_before_job(after.agent, launch_token)
        log.warning(
            "agent task stopped unasked",
            extra={
                "room": name,
                "task_arn": task_arn,
                "crashed": crashed,
                "crashes": len(after.crashes),
                "worker_lost_before_job": lost,
            },
        )
        if lost:
            # The worker's failure, not the room's: no backoff, another slot (or a launch) now.
            self._ports.metrics.count("WorkersLostBeforeJob")
        if counted:
            self._ports.metrics.count("AgentCrashes")
            self._after_failure(after, now, "agent crash loop")
        return self.reconcile(name, after)

    def job_ended(self, message: JobEnded) -> Room | None:
        """A worker reports how a job in a room ended. A failure soon after the job started
        counts toward the room's crash loop (:func:`reconcile.record_job_failed`): the next
        dispatch waits out a backoff, and the loop limit marks the room failed."""
        extra = {
            "room": message.room,
            "task_arn": message.task_arn,
            "job_id": message.job_id,
            "outcome": message.outcome.value,
            "reason": message.reason.value if message.reason else None,
            "exception_type": message.exception_type,
            "duration_seconds": message.duration_seconds,
        }
        if message.outcome is JobOutcome.SUCCESS:
            log.info("agent job ended", extra=extra)
            return self._ports.rooms.get(message.room)
        reason = message.reason or JobFailureReason.OTHER
        self._ports.metrics.count("JobFailures", dimensions={"Reason": reason.value})
        now = self._now()
        policy = self._policy
        after = self._record(
            message.room,
            lambda r: reconcile.record_job_failed(
                r, message.task_arn, message.job_id, message.duration_seconds, now, policy
            ),
        )
        counted = after is not None and bool(after.crashes) and after.crashes[-1] == now
        log.warning("agent job failed", extra={**extra, "counted": counted})
        if after is None or not counted:
            return after
        self._after_failure(after, now, "agent job failure loop")
        return self.reconcile(message.room, after)

    def job_lost(self, name: str, dispatch_id: str, job_id: str, status: str) -> Room | None:
        """The sweep found a job of the room's dispatch dead in LiveKit with no report from its
        worker (killed before it could send one): counted like a reported failure, once per job
        id (:func:`reconcile.record_job_lost`), so a room whose jobs keep dying backs off and
        its crash-loop breaker trips instead of being re-dispatched every sweep."""
        now = self._now()
        policy = self._policy
        after = self._record(name, lambda r: reconcile.record_job_lost(r, dispatch_id, job_id, now, policy))
        if after is None:  # not counted: counted before (by a report or another sweep), or moot
            return None
        log.warning(
            "agent job died without a report",
            extra={"room": name, "dispatch_id": dispatch_id, "job_id": job_id, "status": status},
        )
        self._ports.metrics.count("JobFailures", dimensions={"Reason": "unreported"})
        self._after_failure(after, now, "agent job failure loop")
        return after

    def _after_failure(self, after: Room, now: float, loop: str) -> None:
        """A counted crash or job failure: alarm on a loop, else wake the room after its backoff."""
        if after.failed_at == now:
            log.error(
                f"{loop}: room marked failed, no more launches or dispatches until a human joins",
                extra={
                    "room": after.name,
                    "crashes": len(after.crashes),
                    "limit": self._policy.crash_loop_limit,
                },
            )
            self._ports.metrics.count("CrashLoops")
        elif after.next_launch_at is not None:
            delay = math.ceil(after.next_launch_at - now)
            self._ports.timers.send(Respawn(room=after.name, attempt=len(after.crashes)), delay)

    def room_gone(self, name: str, sid: str, reason: CloseReason = CloseReason.SWEPT) -> Room | None:
        """LiveKit no longer has session ``sid`` of the room: its room_finished was missed (the
        sweep's find), or an operator deleted it. Only that session ends; a room that moved on
        to another session is left alone."""
        now = self._now()

        def finish(room: Room | None) -> Room | None:
            if room is None or room.sid != sid:
                return room
            return observe_room_finished(room, name, sid, room.session_created_at, now, reason)

        self._mutate(name, finish)
        return self.reconcile(name)

    def observe_live_room(self, live: LiveRoom) -> Room | None:
        """What LiveKit's room list shows, recorded the way a ``room_started`` webhook is
        (ordered by creation time, so a listing never rolls a room back); None if stale."""
        now = self._now()
        return self._mutate(
            live.name,
            lambda r: observe_room_started(
                r, live.name, live.sid, live.created_at, live.departure_timeout, now
            ),
        )

    # --- operator and app commands (the HTTP API) ----------------------------------------

    def expect_human(self, live: LiveRoom, identity: str, until: float) -> Room | None:
        """The join API handed ``identity`` a token for LiveKit session ``live``: record the
        session as a ``room_started`` webhook would, reserve the human's place
        (:func:`control_plane.room.expect_human`), and reconcile, so the agent is asked for
        before LiveKit has seen the human. A listing older than the record reserves nothing."""
        now = self._now()
        # LiveKit closes the room departure_timeout after the human leaves (at the earliest
        # now): a deadline (reservation end + grace) past that would outlive the room. Rooms we
        # create cover the whole reservation; one created elsewhere with less caps it.
        until = min(until, now + max(0, live.departure_timeout - self._policy.grace_seconds))

        def reserve(room: Room | None) -> Room | None:
            observed = observe_room_started(
                room, live.name, live.sid, live.created_at, live.departure_timeout, now
            )
            return None if observed is None else expect_human(observed, identity, until, now)

        self._mutate(live.name, reserve)
        return self.reconcile(live.name)

    def force_close(self, name: str) -> Room | None:
        """An operator's close: remove the agent now (``reconcile.force_stop``), then reconcile.
        Idempotent: a room with no agent, or one already stopping, is only reconciled. Humans
        still in the room get a fresh agent. None if the room is unknown."""
        if self._stop_agent(name, None, "closed by an operator"):
            self._ports.metrics.count("AgentsClosedByOperator")
        return self.reconcile(name)

    def retire_agent(self, name: str, launch_token: str) -> Room | None:
        """The sweep found the room's agent (``launch_token``) past ``MAX_AGENT_AGE_SECONDS`` on a
        worker younger agents of other rooms still use: remove that agent alone (its dispatch,
        so its job ends; its slot); humans still there get a fresh one. A newer agent is kept."""
        if self._stop_agent(name, launch_token, "agent past its maximum age", CloseReason.AGENT_MAX_AGE):
            self._ports.metrics.count("AgentsRetired", dimensions={"Reason": "max_age"})
        return self.reconcile(name)

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
            decision = reconcile.force_stop(current, self._now(), why, reason)
            if decision is None:
                return False
            try:
                self._carry_out(current, decision)
            except VersionConflict:
                current = rooms.get(name)
                continue
            return True
        return False

    def reset_failed(self, name: str) -> Room | None:
        """An operator's reset: forget a crash loop and launch backoff
        (:func:`control_plane.room.clear_failure`) so the humans there, or the next to join,
        get an agent. None if the room is unknown."""
        after = self._mutate(name, lambda room: clear_failure(room) if room is not None else None)
        if after is None:
            return None
        log.info("room reset by an operator", extra={"room": name, "state": after.state.value})
        return self.reconcile(name, after)

    def dispatch_replaced(self, name: str, old_dispatch_id: str, new_dispatch_id: str | None) -> Room | None:
        """The recorded dispatch was deleted: adopt the one kept, or none (dispatch again)."""
        now = self._now()
        return self._record(
            name, lambda r: reconcile.record_dispatch_replaced(r, old_dispatch_id, new_dispatch_id, now)
        )

    # --- the loop -------------------------------------------------------------------------

    def reconcile(self, name: str, room: Room | None = None) -> Room | None:
        try:
            return self._reconcile(name, room)
        finally:
            self._refill_pool()

    def _reconcile(self, name: str, room: Room | None) -> Room | None:
        rooms = self._ports.rooms
        current = room if room is not None else rooms.get(name)
        for _ in range(MAX_ROUNDS):
            if current is None:
                return None
            now = self._ports.clock.now()
            self._listed.value = None  # a listing is good for the round it was taken in only
            decision = reconcile.decide(current, self._observe(current, now), now, self._policy)
            if decision is None:
                return current
            try:
                current = self._carry_out(current, decision)
            except VersionConflict:
                current = rooms.get(name)
        log.warning("reconcile did not settle", extra={"room": name, "rounds": MAX_ROUNDS})
        return current

    def _carry_out(self, current: Room, decision: Decision) -> Room | None:
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
        return self._perform(saved, decision)

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
        return reconcile.decide(room, world, self._now(), self._policy) is None

    def _listed_world(self, room: Room, listing: WorkerListing) -> World:
        """``_observe`` on a listing taken earlier, for :meth:`settled`."""
        agent = room.agent
        assert agent is not None
        own = listing.workers.get(agent.task_arn) if agent.task_arn else None
        if not agent.slot_reserved or agent.task_arn is None:
            taken = (
                own is not None
                and bool(own.rooms() - {room.name})
                and own.free_slots(self.capacity.policy.jobs_per_task) == 0
            )
            return World(slot_open=listing.slot_open, own_task_taken=taken)
        ready = own is not None and own.is_ready(self._now(), self._policy.worker_stale_seconds)
        return World(worker_ready=ready)

    def _observe(self, room: Room, now: float) -> World:
        if not reconcile.needs_worker_check(room):
            return World()
        agent = room.agent
        assert agent is not None
        if not agent.slot_reserved or agent.task_arn is None:
            own = self.capacity.own_task(agent.task_arn)
            listed = self.capacity.candidates(room.name, own)
            self._listed.value = (room.name, listed)  # the slot attempt this round decides on
            taken = (
                own is not None
                and bool(own.rooms() - {room.name})
                and own.free_slots(self.capacity.policy.jobs_per_task) == 0
            )
            return World(slot_open=bool(listed), own_task_taken=taken)
        worker = self._ports.workers.get_worker(agent.task_arn)
        ready = worker is not None and worker.is_ready(now, self._policy.worker_stale_seconds)
        return World(worker_ready=ready)

    def _perform(self, room: Room, decision: Decision) -> Room | None:
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
            self._record(name, lambda r: reconcile.release_claim(r, effect))
        except Exception:
            log.exception("could not release a failed claim", extra={"room": name})

    def _acquire(self, room: Room, effect: AcquireSlot) -> Room | None:
        """A slot on a ready worker if one is free; else (``launch``) capacity for the room."""
        capacity = self.capacity
        token = effect.launch_token
        if effect.first:
            self._ports.workers.count_arrival(self._now())
        if effect.takeover:
            found = self._ports.runner.find_launched(token)
            if found:
                return self._record(room.name, lambda r: reconcile.record_launch(r, token, found))
        observed, self._listed.value = getattr(self._listed, "value", None), None
        prefer = room.agent.task_arn if room.agent is not None else None
        workers = (
            observed[1]
            if observed is not None and observed[0] == room.name
            else capacity.candidates(room.name, capacity.own_task(prefer))
        )
        task_arn = capacity.take_slot(room.name, prefer, workers)
        if task_arn is not None:
            after = self._record(room.name, lambda r: reconcile.record_slot(r, token, task_arn))
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
            return self._record(room.name, lambda r: reconcile.record_no_slot(r, token))
        return self._launch(room, token)

    def _refill_pool(self) -> None:
        """Replace the slot this thread's reconcile took (:meth:`_acquire`), after its dispatch."""
        pending, self._refill.value = getattr(self._refill, "value", None), None
        if pending is None:
            return
        room, task_arn = pending
        try:
            pool = self._ports.workers.pool_workers()
            self.capacity.replenish(with_slot(pool, task_arn, room, self._now()))
        except Exception:  # the room has its slot; the pool tops up on the next wake or sweep
            log.exception("pool could not be replenished", extra={"room": room})

    def _launch(self, room: Room, token: str) -> Room | None:
        # Waiting from here on: a slot another worker frees before this launch is ready wakes it.
        self._ports.workers.put_waiting(room.name, self._now())
        try:
            launched = self.capacity.launch_for_room(room.name, token)
        except LaunchOutcomeUnknown as error:
            # ECS may have started it: keep the token, its claim expiring in a few seconds, so
            # the retry finds the task with ``find_launched`` before it launches anything.
            log.warning("task launch outcome unknown", extra={"room": room.name, "error": str(error)})
            self._ports.metrics.count("TaskLaunchOutcomeUnknown")
            retry_at = self._now() + UNKNOWN_LAUNCH_RETRY_SECONDS
            after = self._record(
                room.name, lambda r: reconcile.defer_launch_takeover(r, token, retry_at, self._policy)
            )
            self._ports.timers.send(
                Respawn(room=room.name, attempt=room.launches), UNKNOWN_LAUNCH_RETRY_SECONDS
            )
            return after
        except LaunchFailed as error:
            log.error("task launch failed", extra={"room": room.name, "error": str(error)})
            self._ports.metrics.count("TaskLaunchFailures")
            after = self._record(room.name, lambda r: reconcile.record_launch_failed(r, token, self._now()))
            if after is not None:
                delay = reconcile.launch_backoff_seconds(after.launch_failures)
                self._ports.timers.send(Respawn(room=room.name, attempt=after.launch_failures), delay)
            return after
        if isinstance(launched, LaunchBlocked):
            retry_at = self._now() + launched.retry_after
            after = self._record(
                room.name, lambda r: reconcile.record_launch_queued(r, token, retry_at, self._policy)
            )
            self._ports.timers.send(
                Respawn(room=room.name, attempt=room.launches), max(1, math.ceil(launched.retry_after))
            )
            return after
        self._ports.metrics.count("AgentTasksLaunched")
        log.info("task launched", extra={"room": room.name, "task_arn": launched.task_arn})
        after = self._record(room.name, lambda r: reconcile.record_launch(r, token, launched.task_arn))
        if after is None:
            log.warning(
                "launched task no longer wanted", extra={"room": room.name, "task_arn": launched.task_arn}
            )
            self._ports.workers.remove_waiting(room.name)
            self.capacity.release(room.name, launched.task_arn, slot_reserved=False)
        return after

    def _dispatch(self, room: Room, effect: EnsureDispatch) -> Room | None:
        kept = self._ensure_one_dispatch(room.name, effect.launch_token)
        after = self._record(
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

    def _ensure_one_dispatch(self, room_name: str, token: str) -> Dispatch:
        """Reuse a dispatch for our agent if one exists, delete extras, create one only if none."""
        livekit = self._ports.livekit
        ours = self._our_dispatches(room_name)
        if not ours:
            created = livekit.create_dispatch(
                room_name, self._policy.agent_name, json.dumps({"launch_token": token, "room": room_name})
            )
            self._ports.metrics.count("DispatchesCreated")
            log.info("dispatch created", extra={"room": room_name, "dispatch_id": created.dispatch_id})
            return created
        ours.sort(key=lambda d: (d.has_running_job, d.created_at), reverse=True)
        keep, extras = ours[0], ours[1:]
        for extra in extras:
            livekit.delete_dispatch(room_name, extra.dispatch_id)
            self._ports.metrics.count("DuplicateDispatchesDeleted")
            log.warning(
                "duplicate dispatch deleted", extra={"room": room_name, "dispatch_id": extra.dispatch_id}
            )
        return keep

    def _our_dispatches(self, room_name: str) -> list[Dispatch]:
        """The room's dispatches for our agent; other agents' dispatches are never touched."""
        return [
            d
            for d in self._ports.livekit.list_dispatches(room_name)
            if d.agent_name == self._policy.agent_name
        ]

    def _remove(self, room: Room, effect: RemoveAgent) -> Room | None:
        livekit = self._ports.livekit
        ours = {d.dispatch_id for d in self._our_dispatches(room.name)}
        if effect.dispatch_id:
            ours.add(effect.dispatch_id)
        for dispatch_id in sorted(ours):
            livekit.delete_dispatch(room.name, dispatch_id)
        # Off the waiting list first: its own task is no longer held for it, so release judges it.
        self._ports.workers.remove_waiting(room.name)
        if effect.task_arn:
            self.capacity.release(room.name, effect.task_arn, effect.slot_reserved)
        self._ports.metrics.count("AgentsRemoved")
        log.info(
            "agent removed",
            extra={"room": room.name, "task_arn": effect.task_arn, "dispatches_deleted": len(ours)},
        )
        return self._record(room.name, lambda r: reconcile.record_removed(r, self._now(), self._policy))

    # --- helpers --------------------------------------------------------------------------

    def _record(self, name: str, change: Callable[[Room], Room | None]) -> Room | None:
        """Write an effect's result into the room; None if the room moved on without it."""
        return self._mutate(name, lambda current: change(current) if current is not None else None)

    def _mutate(self, name: str, change: Callable[[Room | None], Room | None]) -> Room | None:
        """Versioned read-modify-write, retried on conflict; creates the room if it is new."""
        rooms = self._ports.rooms
        for _ in range(MAX_ROUNDS):
            current = rooms.get(name)
            updated = change(current)
            if updated is None or updated == current:
                return current if updated is not None else None
            try:
                if current is None:
                    return rooms.create(updated)
                return rooms.save(updated.model_copy(update={"updated_at": self._now()}), current.version)
            except VersionConflict:
                continue
        raise VersionConflict(f"room {name} is too contended to update")

    def _now(self) -> float:
        return self._ports.clock.now()

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
            self.reconcile(name, room)
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

        after = self._mutate(name, record)
        if stale:
            return self._stale(event, after or self._ports.rooms.get(name))
        self.reconcile(name)
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
