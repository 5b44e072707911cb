"""What workers and ECS report about agents (ready, job started or ended, task stopped, a job
found dead by the sweep), recorded into the rooms, which are then reconciled."""

from __future__ import annotations

import logging
import math

from control_plane import reconcile
from control_plane.capacity import Capacity
from control_plane.effects import our_dispatches
from control_plane.ports import Ports
from control_plane.reconcile import Policy
from control_plane.room import Room
from control_plane.room_loop import RoomLoop
from control_plane.room_records import RoomRecords
from control_plane.worker_protocol import (
    JobEnded,
    JobFailureReason,
    JobOutcome,
    JobStarted,
    Respawn,
    WorkerReady,
    agent_identity,
)

log = logging.getLogger(__name__)


def from_slot_holder(claimed: Room, before: Room | None, message: JobStarted) -> bool:
    """The report comes from the task that holds the room's reserved slot, and names the
    room's recorded dispatch if it names one: it moves the agent nowhere, so it needs no
    listing to confirm it.

    The sender is that task: SQS stamps each message with its sender, and the timer handler
    drops a report naming any task but the sender's own (:func:`worker_protocol.sender_may_send`).
    On the real server the job's report usually arrives before ``ListDispatch`` lists the job
    (issue 19): a listing would refuse it and leave the room without its job until a sweep."""
    agent = before.agent if before is not None else None
    return (
        agent is not None
        and claimed.agent is not None
        and agent.slot_reserved
        and agent.task_arn == message.task_arn == claimed.agent.task_arn
        and (message.dispatch_id is None or agent.dispatch_id in (None, message.dispatch_id))
    )


class WorkerReports:
    def __init__(
        self, ports: Ports, policy: Policy, capacity: Capacity, records: RoomRecords, loop: RoomLoop
    ) -> None:
        self._ports = ports
        self._policy = policy
        self._capacity = capacity
        self._records = records
        self._loop = loop

    def worker_ready(self, message: WorkerReady) -> Room | None:
        """A worker can take rooms: the room it was launched for first, then those waiting."""
        # livekit-agents registers again on every reconnect and the worker re-sends WorkerReady:
        # only the first one per task (``ready_at`` set once) is a cold-start sample.
        jobs_per_task = self._capacity.policy.jobs_per_task
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
        room = self._loop.reconcile(message.room) if message.room else None
        self.wake_waiting()
        return room

    def wake_waiting(self) -> None:
        """Give opened slots to the rooms waiting longest, then top the pool up."""
        capacity = self._capacity
        # No open slot at all (every worker busy, a common steady state): no waiting room can
        # take one, so none is judged, which would query the slot index once per room.
        for name in capacity.waiting() if capacity.slot_open() else ():
            if not capacity.slot_open(name):
                continue
            try:
                after = self._loop.reconcile(name)
            except Exception:  # one room's LiveKit or ECS trouble must not hold the others back
                log.exception("waiting room could not take a slot now", extra={"room": name})
                continue
            if after is None or not reconcile.waiting_for_slot(after):
                self._ports.workers.remove_waiting(name)
        capacity.replenish()

    def job_started(self, message: JobStarted) -> Room | None:
        """A worker took a room's job: record where the agent lives; move the slot if LiveKit
        chose another worker than the one whose slot was reserved.

        A claim that would move the agent to another task is first confirmed with LiveKit
        (:meth:`_job_confirmed`), one dispatch listing: a compromised task may report another
        room's job as its own, to move that room's agent onto itself and then kill it with its
        own crash. A report from the task holding the room's slot moves nothing and is believed
        as it comes (:func:`from_slot_holder`), as is a repeated one: no LiveKit call."""
        before = self._ports.rooms.get(message.room)
        claimed = (
            reconcile.record_job_started(before, message.task_arn, message.room_sid, message.job_id)
            if before is not None
            else None
        )
        if (
            claimed is not None
            and claimed != before
            and not from_slot_holder(claimed, before, message)
            and not self._job_confirmed(message)
        ):
            log.warning(
                "job start not confirmed by LiveKit: ignored",
                extra={"room": message.room, "task_arn": message.task_arn, "job_id": message.job_id},
            )
            self._ports.metrics.count("JobReportsUnconfirmed")
            return before
        after = self._records.record(
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
            displaced = self._capacity.job_moved(message.room, previous, message.task_arn)
            if displaced is not None:
                moved = self._records.record(
                    displaced, lambda r: reconcile.record_slot_moved(r, message.task_arn, previous)
                )
                if moved is None:
                    jobs_per_task = self._capacity.policy.jobs_per_task
                    self._ports.workers.release_slot(previous, displaced, jobs_per_task, unassign=True)
        return after

    def _job_confirmed(self, message: JobStarted) -> bool:
        """LiveKit says so: one of the room's dispatches for our agent holds the job, and the
        worker that took it accepted it as this task (:func:`agent_identity`)."""
        identity = agent_identity(message.job_id, message.task_arn)
        return any(
            job.job_id == message.job_id and job.participant_identity == identity
            for dispatch in our_dispatches(self._ports.livekit, message.room, self._policy.agent_name)
            for job in dispatch.jobs
        )

    def task_stopped(self, name: str, task_arn: str, launch_token: str | None, crashed: bool) -> Room | None:
        """ECS says the room's task is gone: remove the agent, and relaunch (after a backoff
        if it crashed) or mark the room failed after too many crashes. None if not ours."""
        now = self._now()
        policy = self._policy
        after = self._records.record(
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
        return self._loop.reconcile(name, after)

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
        after = self._records.record(
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
        return self._loop.reconcile(message.room, after)

    def job_lost(self, name: str, dispatch_id: str, job_id: str, status: str) -> Room | None:
        """The sweep found a job of the room's dispatch dead in LiveKit with no report from its
        worker (killed before it could send one): counted like a reported failure, once per job
        id (:func:`reconcile.record_job_lost`), so a room whose jobs keep dying backs off and
        its crash-loop breaker trips instead of being re-dispatched every sweep."""
        now = self._now()
        policy = self._policy
        after = self._records.record(
            name, lambda r: reconcile.record_job_lost(r, dispatch_id, job_id, now, policy)
        )
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

    def _now(self) -> float:
        return self._ports.clock.now()
