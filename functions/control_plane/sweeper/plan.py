"""What the sweep should do, decided from listings and records alone: pure, tested by tables."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from control_plane.humans import is_human
from control_plane.ports import (
    Dispatch,
    DispatchJob,
    LiveParticipant,
    LiveRoom,
    TaskSnapshot,
)
from control_plane.room import ChangeKind, ParticipantChange, Room
from control_plane.shards import group_shards, shard_of
from control_plane.worker_protocol import WorkerRecord, WorkerStatus, agent_identity

# LiveKit's listings and our records are read at different moments: anything that changed
# within this margin of a listing is left for the next sweep rather than judged on it.
LISTING_MARGIN_SECONDS = 10.0


class DeleteReason(StrEnum):
    DUPLICATE = "duplicate"
    NO_LIVE_JOB = "no_live_job"
    NO_HUMANS = "no_humans"


class StopReason(StrEnum):
    ORPHAN = "orphan"
    STALE_HEARTBEAT = "stale_heartbeat"
    NEVER_READY = "never_ready"
    IDLE = "idle"
    MAX_AGE = "max_age"


# A worker that hung or never started is a failed agent: its room counts a crash.
CRASH_REASONS = frozenset({StopReason.STALE_HEARTBEAT, StopReason.NEVER_READY})


@dataclass(frozen=True)
class SweepPolicy:
    agent_name: str
    grace_seconds: float
    agent_ttl_seconds: float
    settle_seconds: float
    worker_stale_seconds: float
    worker_start_timeout_seconds: float
    max_agent_age_seconds: float
    concurrency: int
    safety_margin_seconds: float
    # Every room's dispatches are audited once per this period, a share of the rooms each sweep.
    audit_period_seconds: float = 7200.0
    sweep_interval_seconds: float = 60.0
    # LiveKit calls per second the sweep may make (0: unlimited).
    livekit_api_rate: float = 0.0


# Room names per ListRooms call of a group's tracked rooms. livekit-server puts no limit on
# ``names`` (v1.9 roomservice.go hands them to the store: one Redis HMGET); a thousand keeps a
# request ~40 KB and a group of 6,250 rooms at 7 calls a minute.
LIST_ROOMS_NAMES = 1000


@dataclass(frozen=True)
class SweepGroup:
    """The share of one sweep an invocation does: the rooms of group ``group``'s attention shards
    (``shards.group_shards``). The lead group (0) also does what has one answer for the whole
    fleet: ECS's task list and the tasks' cleanup, the pool's backstop, the fleet-wide gauges
    and, when ``untracked``, LiveKit's full room list for rooms nobody tracks."""

    group: int = 0
    groups: int = 1
    untracked: bool = True

    @property
    def lead(self) -> bool:
        return self.group == 0

    @property
    def shards(self) -> frozenset[int] | None:
        """The attention shards to read; None (all) for a sweep of one group."""
        return None if self.groups == 1 else group_shards(self.group, self.groups)


def fan_out(now: float, groups: int, untracked_every: int, interval_seconds: float) -> list[SweepGroup]:
    """This minute's groups: the lead lists LiveKit's untracked rooms on every
    ``untracked_every``-th sweep (counted from the epoch, so no state is kept)."""
    untracked = int(now // interval_seconds) % untracked_every == 0
    return [SweepGroup(group, groups, untracked and group == 0) for group in range(groups)]


class RoomCheck(StrEnum):
    """What a sweep does for one room LiveKit lists or we track."""

    CONSISTENT = "consistent"  # record and listing agree: reconcile on the record alone
    INSPECT = "inspect"  # list its participants and dispatches and repair
    GONE = "gone"  # LiveKit no longer has the room
    NEW_SESSION = "new_session"  # LiveKit lists another session under the name


def audit_due(name: str, now: float, policy: SweepPolicy) -> bool:
    """Whether this sweep audits ``name``: rooms are spread over the audit period by a stable
    hash, so each is visited once per period and each sweep audits an equal share."""
    slots = max(1, round(policy.audit_period_seconds / policy.sweep_interval_seconds))
    if slots == 1:
        return True
    slot = int(now // policy.sweep_interval_seconds) % slots
    return shard_of(name, slots) == slot


def participants_explained(room: Room, live: LiveRoom) -> bool:
    """Whether LiveKit's participant count is the recorded humans, so listing the participants
    could show no human the record does not know. LiveKit's ``num_participants`` leaves agents
    and egress out (``IsDependent``): our agent is never in it."""
    return room.sid == live.sid and live.num_participants == len(room.humans)


def plan_room_check(
    room: Room,
    live: LiveRoom | None,
    worker: WorkerRecord | None,
    listed_at: float,
    policy: SweepPolicy,
    audit: bool,
) -> RoomCheck:
    """Whether a tracked room costs per-room LiveKit calls this sweep.

    A room whose session, participant count and agent's worker agree with LiveKit's room list
    costs none: reconcile works on the record. A count that is not the recorded humans (a
    missed join or leave; LiveKit never counts agents, and refreshes the count every 5 s), a job
    failure recorded since the dispatch (its dispatch is dead), a dispatch with no job reported
    started within the settle time (LiveKit offers a job once and drops it when no worker answers
    in 3 s; the dispatch then stays jobless for good), a worker whose heartbeat no longer lists
    the room's started job (killed without a report: OOM, ``kill -9``), a worker gone silent under
    a dispatch, or the room's audit turn (which finds any other dead or duplicate dispatch) makes
    it inspected. Inspection itself leaves alone what changed around
    the listing, so a room in flux costs calls but is never misjudged.
    """
    if live is None:
        return RoomCheck.GONE
    if room.sid != live.sid:
        return RoomCheck.NEW_SESSION
    if audit:
        return RoomCheck.INSPECT
    if live.num_participants != len(room.humans):
        return RoomCheck.INSPECT
    agent = room.agent
    dispatched_at = agent.dispatched_at if agent is not None and agent.dispatch_id is not None else None
    if dispatched_at is not None and room.crashes and room.crashes[-1] >= dispatched_at:
        return RoomCheck.INSPECT  # its job failed since the dispatch: the dispatch is dead
    job = agent.job_id if agent is not None and agent.job_id not in room.failed_jobs else None
    if job is not None and worker is not None and dispatched_at is not None:
        heard_since = worker.heartbeat_at - dispatched_at >= policy.settle_seconds
        if heard_since and worker.jobs.get(room.name) != job:
            return RoomCheck.INSPECT  # its worker no longer runs the job: it died unreported
    unreported = agent is not None and agent.job_id is None
    if unreported and dispatched_at is not None and listed_at - dispatched_at >= policy.settle_seconds:
        return RoomCheck.INSPECT  # no job reported: LiveKit may have dropped it (offered once)
    if agent is not None and agent.dispatch_id is not None and agent.task_arn is not None:
        silent = worker is None or listed_at - worker.heartbeat_at > policy.worker_stale_seconds
        if (
            silent
            and agent.dispatched_at is not None
            and listed_at - agent.dispatched_at >= policy.settle_seconds
        ):
            return RoomCheck.INSPECT
    return RoomCheck.CONSISTENT


def rotate(names: Sequence[str], cursor: str | None) -> list[str]:
    """Names in order, starting at the cursor and wrapping around."""
    start = bisect.bisect_left(names, cursor) if cursor else 0
    return [*names[start:], *names[:start]]


def plan_participant_changes(
    room: Room, participants: Iterable[LiveParticipant], listed_at: float, now: float
) -> list[ParticipantChange]:
    """Joins and leaves the webhooks missed, for a room whose session LiveKit lists.

    A human recorded as present but not listed has left — unless it joined around the time of
    the listing, when the listing may simply predate it. Departed sids never rejoin.
    """
    assert room.sid is not None
    live = {p.sid: p for p in participants if is_human(p.kind)}
    changes = [
        ParticipantChange(
            kind=ChangeKind.JOINED,
            room=room.name,
            room_sid=room.sid,
            sid=sid,
            identity=person.identity,
            at=person.joined_at or now,
            room_created_at=room.session_created_at,
        )
        for sid, person in sorted(live.items())
        if sid not in room.humans and sid not in room.departed
    ]
    changes += [
        ParticipantChange(
            kind=ChangeKind.LEFT,
            room=room.name,
            room_sid=room.sid,
            sid=sid,
            identity=human.identity,
            at=now,
            room_created_at=room.session_created_at,
        )
        for sid, human in sorted(room.humans.items())
        if sid not in live and human.joined_at < listed_at - LISTING_MARGIN_SECONDS
    ]
    return changes


@dataclass(frozen=True)
class DispatchPlan:
    keep: Dispatch | None
    delete: tuple[tuple[Dispatch, DeleteReason], ...]


def plan_dispatch_cleanup(
    ours: Sequence[Dispatch], recorded_id: str | None, now: float, settle_seconds: float
) -> DispatchPlan:
    """At most one dispatch of our agent per room: the one with a running job (the recorded
    one if several), else the newest that may still get a job. A dispatch older than the
    settle time without a live job will never do anything (LiveKit leaves it jobless forever)."""

    def settled(dispatch: Dispatch) -> bool:
        return now - dispatch.created_at >= settle_seconds

    running = [d for d in ours if d.has_running_job]
    hopeful = [d for d in ours if not d.has_running_job and not settled(d)]
    candidates = running or hopeful
    keep = max(candidates, key=lambda d: (d.dispatch_id == recorded_id, d.created_at)) if candidates else None
    delete = tuple(
        (d, DeleteReason.DUPLICATE if d.has_running_job or not settled(d) else DeleteReason.NO_LIVE_JOB)
        for d in ours
        if d is not keep
    )
    return DispatchPlan(keep=keep, delete=delete)


def lost_jobs(room: Room, ours: Sequence[Dispatch]) -> list[DispatchJob]:
    """Jobs of the room's recorded dispatch that died and are not counted yet: failed in
    LiveKit, or ended while humans stay (the agent left them). A job killed outright (OOM,
    ``kill -9``) sends no report: this is how its failure is seen at all."""
    agent = room.agent
    recorded = next((d for d in ours if agent is not None and d.dispatch_id == agent.dispatch_id), None)
    if recorded is None:
        return []
    left_humans = bool(room.humans) and not recorded.has_running_job
    dead = [
        job
        for job in recorded.jobs
        if job.status == "JS_FAILED" or (left_humans and job.status != "JS_PENDING")
    ]
    return [job for job in dead if job.status != "JS_RUNNING" and job.job_id not in room.failed_jobs]


def job_to_adopt(
    room: Room, ours: Sequence[Dispatch], workers: Iterable[WorkerRecord]
) -> tuple[DispatchJob, str] | None:
    """The running job of the room's recorded dispatch that the record lacks (its worker's
    ``JobStarted`` is late or lost), and the task that runs it; None if the record has its job
    or no worker owns one. Two witnesses, as for a report: LiveKit's job names the task
    (:func:`agent_identity`), and that task's own record lists the job on its heartbeat.
    Adopting it keeps a slow report from ever looking like a dropped job."""
    agent = room.agent
    if agent is None or agent.job_id is not None or agent.dispatch_id is None:
        return None
    recorded = next((d for d in ours if d.dispatch_id == agent.dispatch_id), None)
    running = {job.job_id: job for job in recorded.jobs if job.status == "JS_RUNNING"} if recorded else {}
    for worker in workers:
        job = running.get(worker.jobs.get(room.name, ""))
        if job is not None and job.participant_identity == agent_identity(job.job_id, worker.task_arn):
            return job, worker.task_arn
    return None


@dataclass(frozen=True)
class TaskStop:
    task: TaskSnapshot
    reason: StopReason
    room: str | None
    agent_age: float | None = None  # the oldest agent's on it, for a max-age stop


@dataclass(frozen=True)
class AgedAgent:
    """A room's agent past ``max_agent_age_seconds`` on a worker younger agents still use:
    that agent alone is removed (``launch_token`` names it, so a newer one is left alone)."""

    room: str
    launch_token: str
    task_arn: str
    age: float


@dataclass(frozen=True)
class TaskPlan:
    stop: tuple[TaskStop, ...]
    gone_workers: tuple[WorkerRecord, ...]
    vanished: tuple[tuple[str, str], ...]  # (room, task arn) whose task ECS no longer lists
    aged: tuple[AgedAgent, ...] = ()


def agent_started_at(room: Room, worker: WorkerRecord | None) -> float | None:
    """When the room's agent began: its dispatch, else its slot's reservation on ``worker``;
    None while it has neither (it is not in the room yet). Never the task's start: a warm
    worker may have idled for hours before this room took it."""
    agent = room.agent
    if agent is None or agent.task_stopped_at is not None or room.stop_requested_at is not None:
        return None
    if agent.dispatched_at is not None:
        return agent.dispatched_at
    if agent.slot_reserved and worker is not None:
        return worker.reserved.get(room.name)
    return None


def plan_task_cleanup(
    tasks: Sequence[TaskSnapshot],
    workers: Sequence[WorkerRecord],
    rooms: Sequence[Room],
    now: float,
    policy: SweepPolicy,
) -> TaskPlan:
    """What to do about our tasks, judged from ECS, the worker records and the rooms.

    A task is claimed by the room whose agent is on it (task ARN, or launch token while the
    launch is unrecorded) or, for a worker serving jobs or holding slots, by those rooms.
    """
    listed = {task.task_arn: task for task in tasks}
    records = {worker.task_arn: worker for worker in workers}
    claims: dict[str, str] = {}
    by_token: dict[str, str] = {}
    vanished: list[tuple[str, str]] = []
    # Each room's agent on a task with its own age (None: not in its room yet).
    agents: dict[str, list[tuple[Room, float | None]]] = {}
    for room in rooms:
        agent = room.agent
        if agent is None or agent.task_stopped_at is not None or room.stop_requested_at is not None:
            continue
        if agent.task_arn is None:
            by_token[agent.launch_token] = room.name
            continue
        claims[agent.task_arn] = room.name
        started = agent_started_at(room, records.get(agent.task_arn))
        agents.setdefault(agent.task_arn, []).append((room, None if started is None else now - started))
        if agent.task_arn not in listed and now - agent.launch_claimed_at >= policy.settle_seconds:
            vanished.append((room.name, agent.task_arn))
    for task in tasks:
        if task.task_arn not in claims and task.launch_token in by_token:
            claims[task.task_arn] = by_token[task.launch_token]

    stops: list[TaskStop] = []
    aged: list[AgedAgent] = []
    for task in tasks:
        record = records.get(task.task_arn)
        owner = claims.get(task.task_arn)
        if owner is None and record is not None and record.rooms():
            owner = min(record.rooms())
        reason = _stop_reason(task, record, owner is not None, now, policy)
        hosted = agents.get(task.task_arn, [])
        old = [(room, age) for room, age in hosted if age is not None and age > policy.max_agent_age_seconds]
        oldest = max((age for _, age in old), default=None)
        if reason is None and old and len(old) == len(hosted) and not _hosts_others(record, hosted):
            reason = StopReason.MAX_AGE  # every agent on it is past the age: the task goes
        elif reason is None:
            aged += [
                AgedAgent(room.name, room.agent.launch_token, task.task_arn, age)
                for room, age in old
                if room.agent
            ]
        if reason is not None:
            stops.append(TaskStop(task, reason, owner, oldest if reason is StopReason.MAX_AGE else None))
    stopping = {stop.task.task_arn for stop in stops}

    idle = [
        record
        for record in records.values()
        if record.task_arn in listed
        and record.task_arn not in claims
        and record.task_arn not in stopping
        and not record.rooms()
        and now - record.heartbeat_at <= policy.worker_stale_seconds
    ]
    # Asked to drain (the pool's scale-in, or a recycle) on an earlier sweep and still there
    # with nothing to do: stop it. Scale-in itself is the pool's (``Capacity.replenish``).
    stops += [
        TaskStop(listed[record.task_arn], StopReason.IDLE, None)
        for record in idle
        if record.draining and record.status is not WorkerStatus.STARTING
    ]
    gone = tuple(
        record
        for record in records.values()
        if record.task_arn not in listed and now - record.heartbeat_at > policy.worker_stale_seconds
    )
    return TaskPlan(stop=tuple(stops), gone_workers=gone, vanished=tuple(vanished), aged=tuple(aged))


def _hosts_others(record: WorkerRecord | None, hosted: Sequence[tuple[Room, float | None]]) -> bool:
    """The worker lists jobs or slots for rooms whose records do not point at it (yet)."""
    return record is not None and bool(record.rooms() - {room.name for room, _ in hosted})


def _stop_reason(
    task: TaskSnapshot, record: WorkerRecord | None, claimed: bool, now: float, policy: SweepPolicy
) -> StopReason | None:
    age = task.age(now)
    if record is not None and record.status in (WorkerStatus.READY, WorkerStatus.DRAINING):
        if now - record.heartbeat_at > policy.worker_stale_seconds:
            return StopReason.STALE_HEARTBEAT
    else:
        # Never reported ready: judged by the time ECS (or its RUNNING event) first showed it.
        seen_at = record.heartbeat_at if record is not None else None
        waited = now - seen_at if seen_at is not None else age
        if waited is not None and waited > policy.worker_start_timeout_seconds:
            return StopReason.NEVER_READY if claimed else StopReason.ORPHAN
    return None
