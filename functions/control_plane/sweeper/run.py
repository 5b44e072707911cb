"""One sweep (or one group's share of it), executed: tasks first (ECS before the index), then
every room from the cursor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from control_plane.controller import RoomController
from control_plane.humans import is_human
from control_plane.pool import slot_candidates, usable
from control_plane.ports import (
    Dispatch,
    DispatchJob,
    LiveKitGateway,
    LiveKitUnavailable,
    LiveParticipant,
    LiveRoom,
    Ports,
    RunnerUnavailable,
    TaskSnapshot,
)
from control_plane.reconcile import grace_expired
from control_plane.room import NEEDS_ATTENTION, Room, RoomState
from control_plane.room_loop import WorkerListing
from control_plane.sweeper.bridge import AsyncLiveKit, BudgetedLiveKit, CallBudget, LoopBridge, SweepMetrics
from control_plane.sweeper.plan import (
    CRASH_REASONS,
    LIST_ROOMS_NAMES,
    LISTING_MARGIN_SECONDS,
    AgedAgent,
    DeleteReason,
    DispatchPlan,
    RoomCheck,
    StopReason,
    SweepGroup,
    SweepPolicy,
    TaskStop,
    agent_started_at,
    audit_due,
    job_to_adopt,
    lost_jobs,
    participants_explained,
    plan_dispatch_cleanup,
    plan_participant_changes,
    plan_room_check,
    plan_task_cleanup,
    rotate,
)
from control_plane.task_events import is_crash
from control_plane.worker_protocol import JobStarted, WorkerRecord, WorkerStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

# Quiet rooms are judged without leaving the loop; it yields after this many, so the LiveKit
# calls of the rooms being inspected are not held up by a long run of quiet ones.
QUIET_ROOMS_PER_YIELD = 100


@dataclass(frozen=True)
class SweepReport:
    rooms_total: int
    rooms_visited: int
    complete: bool
    next_cursor: str | None
    duration_seconds: float
    counts: dict[str, float] = field(default_factory=dict)
    livekit_calls: int = 0
    rooms_inspected: int = 0
    group: int = 0


class Sweeper:
    def __init__(
        self,
        ports: Ports,
        livekit: AsyncLiveKit,
        controller_for: Callable[[Ports], RoomController],
        policy: SweepPolicy,
        *,
        sync_livekit: LiveKitGateway | None = None,
    ) -> None:
        """``sync_livekit``: a synchronous gateway to the same LiveKit (a twin, in simulations);
        the sweep then runs its blocking steps inline instead of handing them to threads."""
        self._ports = ports
        self._livekit = livekit
        self._controller_for = controller_for
        self._policy = policy
        self._sync_livekit = sync_livekit

    def sweep(self, remaining_seconds: Callable[[], float], group: SweepGroup | None = None) -> SweepReport:
        """One sweep, or one group's share of it; ``remaining_seconds`` is the Lambda's time
        left (context)."""
        return self._livekit.run(self._sweep(remaining_seconds, group or SweepGroup()))

    async def _sweep(self, remaining_seconds: Callable[[], float], group: SweepGroup) -> SweepReport:
        started = time.monotonic()
        metrics = SweepMetrics()
        livekit = BudgetedLiveKit(self._livekit, CallBudget(self._policy.livekit_api_rate))
        if self._sync_livekit is not None:
            ports = replace(self._ports, livekit=self._sync_livekit, metrics=metrics)
            run = _SweepRun(ports, livekit, self._controller_for(ports), self._policy, None, metrics, group)
            visited, total, cursor = await run.execute(remaining_seconds)
        else:
            ports = replace(
                self._ports, livekit=LoopBridge(livekit, asyncio.get_running_loop()), metrics=metrics
            )
            with ThreadPoolExecutor(self._policy.concurrency, thread_name_prefix="sweep") as pool:
                run = _SweepRun(
                    ports, livekit, self._controller_for(ports), self._policy, pool, metrics, group
                )
                visited, total, cursor = await run.execute(remaining_seconds)
        duration = time.monotonic() - started
        metrics.count("SweepDurationSeconds", duration, "Seconds")
        metrics.count("RoomsSwept", visited)
        metrics.count("SweepLiveKitCalls", livekit.calls)
        counts = metrics.flush(self._ports.metrics)
        report = SweepReport(
            rooms_total=total,
            rooms_visited=visited,
            complete=visited == total,
            next_cursor=cursor,
            duration_seconds=duration,
            counts=counts,
            livekit_calls=livekit.calls,
            rooms_inspected=run.inspected,
            group=group.group,
        )
        log.info("sweep done", extra={"report": asdict(report)})
        return report


class _SweepRun:
    """One sweep's state: the loop's thread pool, the bridged controller, the listings."""

    def __init__(
        self,
        ports: Ports,
        livekit: AsyncLiveKit,
        controller: RoomController,
        policy: SweepPolicy,
        pool: ThreadPoolExecutor | None,
        metrics: SweepMetrics,
        group: SweepGroup,
    ) -> None:
        self.ports = ports
        self.livekit = livekit
        self.controller = controller
        self.policy = policy
        self.pool = pool
        self.metrics = metrics
        self.live: dict[str, LiveRoom] | None = None
        self.listed_at = 0.0
        self.workers: dict[str, WorkerRecord] = {}
        self.listing: WorkerListing | None = None
        self.inspected = 0
        self.group = group
        # Rooms other groups track: never "untracked" in the lead's full room list.
        self.tracked_elsewhere: frozenset[str] = frozenset()

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        if self.pool is None:
            return call(*args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(call, *args))

    def now(self) -> float:
        return self.ports.clock.now()

    async def execute(self, remaining_seconds: Callable[[], float]) -> tuple[int, int, str | None]:
        # ECS before the index: a task listed was launched before its room record was read,
        # so the record (or its launch token) claims it.
        group = self.group
        tasks = await self._list_tasks() if group.lead else None
        rooms: list[Room] = await self.blocking(
            lambda: list(self.ports.rooms.rooms_needing_attention(group.shards))
        )
        # Every live worker: a room's agent may run on a task of any shard.
        workers: list[WorkerRecord] = await self.blocking(lambda: list(self.ports.workers.live_workers()))
        self.workers = {worker.task_arn: worker for worker in workers}
        pool = self.controller.capacity.policy
        self.listing = WorkerListing(self.workers, bool(slot_candidates(workers, self.now(), pool)))
        if group.lead:
            await self._fleet_steps(tasks, workers, rooms)
        await self._list_live_rooms(rooms)
        return await self._sweep_rooms(rooms, remaining_seconds)

    async def _fleet_steps(
        self, tasks: list[TaskSnapshot] | None, workers: list[WorkerRecord], rooms: list[Room]
    ) -> None:
        """What has one answer for the whole fleet, the lead group's: a task is claimed by a
        room of any shard, so the tasks are judged against every tracked room."""
        claims = rooms
        if self.group.groups > 1:
            claims = await self.blocking(lambda: list(self.ports.rooms.rooms_needing_attention()))
            self.tracked_elsewhere = frozenset(room.name for room in claims) - {room.name for room in rooms}
        self._count_gauges(claims, tasks)
        if tasks is not None:
            # Healed before this sweep stops anything: a task stopped now is released by its own
            # STOPPED event, which a heal on this (older) listing would otherwise undo.
            await self._guarded(self._heal_task_count, tasks, "*")
            await self._clean_tasks(tasks, workers, claims)
        # The pool's backstop: orphaned reservations are freed, slot index keys a worker's own
        # write left behind are re-filed, waiting rooms take open slots,
        # then it launches or scales in.
        try:
            await self.blocking(
                self.controller.capacity.reap_orphaned_slots, workers, self.policy.settle_seconds
            )
            await self.blocking(self.controller.capacity.refile_drifted, workers)
            await self.blocking(self.controller.wake_waiting)
        except Exception:
            log.exception("the pool's backstop failed; the next sweep tries again")
            self.metrics.count("SweepErrors")

    # --- listings --------------------------------------------------------------------------

    async def _list_tasks(self) -> list[TaskSnapshot] | None:
        try:
            return await self.blocking(self.ports.runner.list_tasks)
        except RunnerUnavailable:
            self._listing_failed("ecs")
            return None

    async def _list_live_rooms(self, rooms: Sequence[Room]) -> None:
        """LiveKit's view of this group's rooms: every open room when it is the turn for rooms
        nobody tracks, else only the tracked ones, by name, ``LIST_ROOMS_NAMES`` a call."""
        self.listed_at = self.now()
        try:
            if self.group.untracked and self.group.lead:  # only the lead knows every tracked room
                listed = await self.livekit.alist_rooms()
            else:
                names = sorted(room.name for room in rooms)
                chunks = [names[i : i + LIST_ROOMS_NAMES] for i in range(0, len(names), LIST_ROOMS_NAMES)]
                listed = [room for chunk in chunks for room in await self.livekit.alist_rooms(chunk)]
            self.live = {room.name: room for room in listed}
        except LiveKitUnavailable:
            self._listing_failed("livekit")

    def _listing_failed(self, source: str) -> None:
        log.exception(
            "sweep listing failed: skipping what depends on it until the next sweep", extra={"source": source}
        )
        self.metrics.count("SweepListingFailures", dimensions={"Source": source})
        self.metrics.count("SweepErrors")

    def _count_gauges(self, rooms: Sequence[Room], tasks: Sequence[TaskSnapshot] | None) -> None:
        states = {state: 0 for state in sorted(NEEDS_ATTENTION | {RoomState.IDLE})}
        for room in rooms:
            states[room.state] = states.get(room.state, 0) + 1
        for state, number in states.items():
            self.metrics.count("Rooms", number, dimensions={"State": state.value})
        active = sum(
            1
            for r in rooms
            if r.agent is not None and r.state in (RoomState.STARTING, RoomState.ACTIVE, RoomState.GRACE)
        )
        self.metrics.count("ActiveAgents", active)
        pool = self.controller.capacity.policy
        now = self.now()
        free = sum(w.free_slots(pool.jobs_per_task) for w in self.workers.values() if usable(w, now, pool))
        self.metrics.count("WarmSlots", free)
        # The agents' ages, never the tasks': a warm worker may idle for hours before its room.
        started = [
            at
            for at in (
                agent_started_at(
                    r, self.workers.get(r.agent.task_arn) if r.agent and r.agent.task_arn else None
                )
                for r in rooms
            )
            if at is not None
        ]
        self.metrics.count("OldestAgentAgeSeconds", max((now - at for at in started), default=0.0), "Seconds")
        if tasks is not None:
            self.metrics.count("RunningTasks", len(tasks))

    # --- tasks -----------------------------------------------------------------------------

    async def _clean_tasks(
        self, tasks: list[TaskSnapshot], workers: list[WorkerRecord], rooms: list[Room]
    ) -> None:
        plan = plan_task_cleanup(tasks, workers, rooms, self.now(), self.policy)
        await asyncio.gather(
            *(self._guarded(self._stop_task, stop, stop.task.task_arn) for stop in plan.stop),
            *(self._guarded(self._forget_worker, record, record.task_arn) for record in plan.gone_workers),
            *(self._guarded(self._retire_agent, aged, aged.task_arn) for aged in plan.aged),
        )
        if plan.vanished:
            await self._settle_vanished(plan.vanished, {w.task_arn: w for w in workers})

    async def _guarded(self, step: Callable[[T], object], subject: T, task_arn: str) -> None:
        """One task's cleanup step; its failure is logged and counted, and the others go on."""
        try:
            await self.blocking(step, subject)
        except Exception:
            log.exception(
                "task cleanup step failed; the next sweep tries again", extra={"task_arn": task_arn}
            )
            self.metrics.count("SweepErrors")

    def _stop_task(self, stop: TaskStop) -> None:
        task = stop.task
        log.warning(
            "stopping agent task",
            extra={
                "task_arn": task.task_arn,
                "reason": stop.reason.value,
                "room": stop.room,
                "task_age": task.age(self.now()),
                "agent_age": stop.agent_age,
            },
        )
        self.ports.runner.stop(task.task_arn, f"sweeper: {stop.reason.value}")
        self.ports.workers.mark_draining(task.task_arn)
        self.metrics.count("TasksStopped", dimensions={"Reason": stop.reason.value})
        if stop.room is not None:
            self.controller.task_stopped(
                stop.room, task.task_arn, task.launch_token, stop.reason in CRASH_REASONS
            )

    def _heal_task_count(self, tasks: list[TaskSnapshot]) -> None:
        """The live-task count behind ``MAX_TASKS`` rebuilt from this listing: a STOPPED event
        lost, or a Lambda that died between counting a launch and RunTask, is forgotten."""
        if self.ports.tasks is not None:
            self.ports.tasks.heal({task.task_arn for task in tasks}, self.now())

    def _retire_agent(self, aged: AgedAgent) -> None:
        log.warning(
            "removing an agent past its maximum age",
            extra={
                "room": aged.room,
                "task_arn": aged.task_arn,
                "agent_age": aged.age,
                "reason": StopReason.MAX_AGE.value,
            },
        )
        self.controller.retire_agent(aged.room, aged.launch_token)

    def _forget_worker(self, record: WorkerRecord) -> None:
        """ECS no longer runs it and it stopped heartbeating: out of the live index."""
        self.ports.workers.put_worker(record.model_copy(update={"status": WorkerStatus.STOPPED}))

    async def _settle_vanished(
        self, vanished: Sequence[tuple[str, str]], workers: Mapping[str, WorkerRecord]
    ) -> None:
        """Rooms whose task ECS no longer lists: learn how it stopped, as its event would say."""
        try:
            found = await self.blocking(self.ports.runner.describe_tasks, [arn for _, arn in vanished])
        except RunnerUnavailable:
            self._listing_failed("ecs")
            return
        described = {task.task_arn: task for task in found}
        for room, arn in vanished:
            task = described.get(arn)
            if task is not None and task.last_status != "STOPPED":
                continue  # still stopping: its STOPPED event, or the next sweep, will tell
            worker = workers.get(arn)
            crashed = task is not None and is_crash(
                task.stop_code, task.exit_codes, draining=worker is not None and worker.draining
            )
            log.warning(
                "agent task stopped without an event reaching us", extra={"room": room, "task_arn": arn}
            )
            self.metrics.count("MissedTaskStops")
            await self._guarded(
                partial(self.controller.task_stopped, task_arn=arn, launch_token=None, crashed=crashed),
                room,
                arn,
            )

    # --- rooms -----------------------------------------------------------------------------

    async def _sweep_rooms(
        self, rooms: list[Room], remaining_seconds: Callable[[], float]
    ) -> tuple[int, int, str | None]:
        tracked = {room.name: room for room in rooms}
        names = sorted(set(tracked) | (set(self.live or ()) - self.tracked_elsewhere))
        cursor = await self.blocking(self.ports.rooms.get_sweep_cursor, self.group.group)
        slots = asyncio.Semaphore(self.policy.concurrency)
        pending: list[asyncio.Task[None]] = []
        quiet = 0
        next_cursor: str | None = None
        for name in rotate(names, cursor):
            room = tracked.get(name)
            # Most rooms are quiet: judged here, at no task, thread, read or call.
            is_quiet = room is not None and self._quiet(room)
            if not is_quiet:
                await slots.acquire()
            if remaining_seconds() < self.policy.safety_margin_seconds:
                if not is_quiet:
                    slots.release()
                next_cursor = name
                log.warning("sweep stopped before the Lambda deadline", extra={"resume_at": name})
                self.metrics.count("SweepIncomplete")
                break
            if is_quiet:
                quiet += 1
                if quiet % QUIET_ROOMS_PER_YIELD == 0:
                    await asyncio.sleep(0)  # let the calls of rooms in flight move on
                continue
            pending.append(asyncio.create_task(self._visit(name, room, slots)))
        await asyncio.gather(*pending)
        if next_cursor != cursor:
            await self.blocking(self.ports.rooms.put_sweep_cursor, next_cursor, self.group.group)
        return len(pending) + quiet, len(names), next_cursor

    def _quiet(self, room: Room) -> bool:
        """A tracked room that agrees with LiveKit's room list, is not due its audit and that
        reconcile would leave as it is: nothing to do, decided without leaving the loop."""
        if self.live is None:
            return False
        live_room = self.live.get(room.name)
        agent = room.agent
        worker = self.workers.get(agent.task_arn) if agent is not None and agent.task_arn else None
        audit = audit_due(room.name, self.listed_at, self.policy)
        check = plan_room_check(room, live_room, worker, self.listed_at, self.policy, audit)
        return check is RoomCheck.CONSISTENT and self.controller.settled(room, self.listing)

    async def _visit(self, name: str, room: Room | None, slots: asyncio.Semaphore) -> None:
        try:
            live_room = self.live.get(name) if self.live is not None else None
            if self.live is None:
                if room is not None:
                    await self._reconcile(room)
            elif room is None:
                if live_room is not None:
                    await self._visit_untracked(live_room)
            else:
                await self._visit_tracked(room, live_room)
        except Exception:
            log.exception("sweeping a room failed; the next sweep tries again", extra={"room": name})
            self.metrics.count("SweepErrors")
        finally:
            slots.release()

    async def _visit_tracked(self, room: Room, live_room: LiveRoom | None) -> None:
        agent = room.agent
        worker = self.workers.get(agent.task_arn) if agent is not None and agent.task_arn else None
        audit = audit_due(room.name, self.listed_at, self.policy)
        check = plan_room_check(room, live_room, worker, self.listed_at, self.policy, audit)
        if check is RoomCheck.GONE:
            await self._room_gone(room)
        elif check is RoomCheck.CONSISTENT:
            await self._reconcile(room)
        else:
            assert live_room is not None
            await self._sweep_tracked(room, live_room)

    async def _our_dispatches(self, room: str) -> list[Dispatch]:
        return [
            d for d in await self.livekit.alist_dispatches(room) if d.agent_name == self.policy.agent_name
        ]

    async def _reconcile(self, room: Room) -> None:
        if self.controller.settled(room, self.listing):
            return  # decided on the spot: nothing to do, so no thread hop and no read
        due = grace_expired(room, self.now())
        after = await self.blocking(self.controller.reconcile, room.name, room)
        if due and (after is None or after.state is not RoomState.GRACE):
            log.info(
                "grace period ended by the sweep (its timer was late or lost)", extra={"room": room.name}
            )
            self.metrics.count("GraceExpiries")

    async def _room_gone(self, room: Room) -> None:
        if room.sid is None or room.updated_at >= self.listed_at - LISTING_MARGIN_SECONDS:
            await self._reconcile(room)  # too fresh to trust the listing's word on it
            return
        log.warning(
            "room no longer exists in LiveKit: closing it", extra={"room": room.name, "room_sid": room.sid}
        )
        self.metrics.count("RoomsGone")
        await self.blocking(self.controller.room_gone, room.name, room.sid)

    async def _sweep_tracked(
        self, room: Room, live_room: LiveRoom, participants: list[LiveParticipant] | None = None
    ) -> None:
        """Inspect a room: its dispatches first; its participants only when the listing's count
        is not the recorded humans (or the session is new)."""
        self.inspected += 1
        listed_at = self.now()
        ours = await self._our_dispatches(room.name)
        if room.sid != live_room.sid:
            # Recorded exactly as a room_started webhook would be: a newer session replaces the
            # old one (whose agent reconcile then stops), a listing older than the record is
            # ignored. The sweep never makes up a session of its own.
            observed = await self.blocking(self.controller.observe_live_room, live_room)
            if observed is None or observed.sid != live_room.sid:
                await self._reconcile(room)
                return
            log.warning(
                "room has a new LiveKit session: ending the old one",
                extra={"room": room.name, "old_sid": room.sid, "room_sid": live_room.sid},
            )
            self.metrics.count("RoomsGone")
            room = observed
        if participants is None and not participants_explained(room, live_room):
            participants = await self.livekit.alist_participants(live_room.name)
        if participants is not None:
            room = await self.blocking(self._apply_changes, room, participants, listed_at)
        plan = plan_dispatch_cleanup(
            ours, room.agent.dispatch_id if room.agent else None, self.now(), self.policy.settle_seconds
        )
        await self._delete_dispatches(room.name, plan.delete)
        room = await self.blocking(self._follow_dispatch, room, plan, ours, listed_at)
        adopted = job_to_adopt(room, ours, self.workers.values())
        if adopted is not None:
            room = await self.blocking(self._adopt_job, room, *adopted)
        await self._reconcile(room)

    def _apply_changes(self, room: Room, participants: list[LiveParticipant], listed_at: float) -> Room:
        for change in plan_participant_changes(room, participants, listed_at, self.now()):
            log.warning(
                f"sweep found a missed {change.kind.value}",
                extra={"room": room.name, "participant_sid": change.sid, "identity": change.identity},
            )
            self.metrics.count("ParticipantsReconciled", dimensions={"Change": change.kind.value})
            room = self.ports.rooms.observe_participant(change)
        return room

    def _follow_dispatch(
        self, room: Room, plan: DispatchPlan, ours: Sequence[Dispatch], listed_at: float
    ) -> Room:
        """Keep the room's record of its dispatch true after the cleanup: count its jobs that
        died unreported (backoff and breaker, as a reported failure), then adopt the survivor,
        or forget a dead one so reconcile dispatches again once a worker is ready."""
        agent = room.agent
        if agent is None or agent.dispatch_id is None:
            return room
        for job in lost_jobs(room, ours):
            room = self.controller.job_lost(room.name, agent.dispatch_id, job.job_id, job.status) or room
        listed = {d.dispatch_id for d in ours}
        deleted = {d.dispatch_id for d, _ in plan.delete}
        vanished = (
            agent.dispatch_id not in listed
            and agent.dispatched_at is not None
            and agent.dispatched_at < listed_at - self.policy.settle_seconds
        )
        if agent.dispatch_id not in deleted and not vanished:
            return room
        survivor = plan.keep.dispatch_id if plan.keep else None
        log.warning(
            "room's dispatch was dead or gone",
            extra={"room": room.name, "dispatch_id": agent.dispatch_id, "adopted": survivor},
        )
        return self.controller.dispatch_replaced(room.name, agent.dispatch_id, survivor) or room

    def _adopt_job(self, room: Room, job: DispatchJob, task_arn: str) -> Room:
        """Record the job LiveKit runs for the room as its worker's report would have."""
        assert room.sid is not None
        log.warning(
            "room's job started without a report reaching us: adopting it",
            extra={"room": room.name, "job_id": job.job_id, "task_arn": task_arn},
        )
        self.metrics.count("JobStartsAdopted")
        report = JobStarted(task_arn=task_arn, room=room.name, room_sid=room.sid, job_id=job.job_id)
        return self.controller.job_started(report) or room

    async def _delete_dispatches(self, room: str, doomed: Iterable[tuple[Dispatch, DeleteReason]]) -> None:
        for dispatch, reason in doomed:
            await self.livekit.adelete_dispatch(room, dispatch.dispatch_id)
            log.warning(
                "dispatch deleted",
                extra={"room": room, "dispatch_id": dispatch.dispatch_id, "reason": reason.value},
            )
            self.metrics.count("DispatchesDeleted", dimensions={"Reason": reason.value})

    async def _visit_untracked(self, live_room: LiveRoom) -> None:
        """A room we do not track: humans there lost their first join (adopt the room through
        the same observe path as webhooks); otherwise only our agent's leftovers matter."""
        participants = (
            await self.livekit.alist_participants(live_room.name) if live_room.num_participants else []
        )
        if participants:
            self.inspected += 1
        if any(is_human(p.kind) for p in participants):
            adopted = await self.blocking(self.controller.observe_live_room, live_room)
            if adopted is not None and adopted.sid == live_room.sid:
                log.warning(
                    "untracked room with humans: adopting it (its first join was lost)",
                    extra={"room": live_room.name, "room_sid": live_room.sid},
                )
                self.metrics.count("RoomsAdopted")
                await self._sweep_tracked(adopted, live_room, participants)
                return
        if not participants and not audit_due(live_room.name, self.listed_at, self.policy):
            return  # no agent of ours is in it; a jobless dispatch waits for the room's audit
        ours = await self._our_dispatches(live_room.name)
        if not ours:
            return
        record = await self.blocking(self.ports.rooms.get, live_room.name)
        now = self.now()
        plan = plan_dispatch_cleanup(ours, None, now, self.policy.settle_seconds)
        doomed = list(plan.delete)
        last_activity = max(
            [live_room.created_at, *(d.created_at for d in ours), *(p.joined_at for p in participants)]
            + ([record.updated_at] if record is not None else [])
        )
        # A room we know emptied gets the grace period; one we never tracked, the agent TTL.
        idle_limit = self.policy.grace_seconds if record is not None else self.policy.agent_ttl_seconds
        humans = any(is_human(p.kind) for p in participants)
        if plan.keep is not None and not humans and now - last_activity > idle_limit:
            doomed.append((plan.keep, DeleteReason.NO_HUMANS))
        await self._delete_dispatches(live_room.name, doomed)
