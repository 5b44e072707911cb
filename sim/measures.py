"""Per-run measurements from the trace and the ledger: when humans were there, when agents were,
and how long each session waited. ``report.measure`` turns them into figures."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Mapping

from sim.intervals import EMPTY, Interval, Union, overlap_seconds
from sim.ledger import Ledger
from sim.model import WorkerBehaviour
from sim.prices import FARGATE_MINIMUM_SECONDS
from sim.traces import Trace

# Humans without an agent this long at a stretch were left without one: longer than the worst
# cold start, a lost first join healed by the sweep, and a 5-minute capacity outage with backoff.
STRANDED_AFTER_S = 600.0


class Humans:
    """When each room had humans, and the grace window after each time it emptied: the least of
    the gap, the grace period and the session's ``departure_timeout`` (LiveKit closes it then)."""

    def __init__(self, trace: Trace, grace: float) -> None:
        spans: dict[str, list[Interval]] = defaultdict(list)
        opened: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for s in trace.sessions:
            spans[s.room].extend((p.join, p.leave) for p in s.presences)
            opened[s.room].append((s.opened_at, s.departure_timeout))
        self.occupancy = {room: Union(intervals) for room, intervals in spans.items()}
        windows: dict[str, list[Interval]] = defaultdict(list)
        self.floor = 0.0
        for room, union in self.occupancy.items():
            sessions = sorted(opened[room])
            for index, (_, empty_from) in enumerate(union.spans):
                next_join = union.spans[index + 1][0] if index + 1 < len(union.spans) else math.inf
                at = bisect.bisect_right(sessions, (empty_from, math.inf)) - 1
                departure = float(sessions[at][1]) if at >= 0 else 0.0
                window = min(next_join - empty_from, grace, departure)
                self.floor += window
                windows[room].append((empty_from, empty_from + window))
        self.grace_windows = {room: Union(intervals) for room, intervals in windows.items()}
        self.room_seconds = sum(union.length for union in self.occupancy.values())


class Agents:
    """Agent time by room: a task launched for a room (a worker that declines other rooms' jobs)
    counts for it from RunTask to stop; a worker that takes any room's job counts for a room only
    while its job runs there. Idle time starts when the worker is ready."""

    def __init__(self, ledger: Ledger, worker: WorkerBehaviour, humans: Humans) -> None:
        by_room: dict[str, list[Interval]] = defaultdict(list)
        jobs_by_room: dict[str, list[Interval]] = defaultdict(list)
        jobs_by_task: dict[str, list[tuple[str, Interval]]] = defaultdict(list)
        for job in ledger.jobs:
            end = job.end if job.end is not None else ledger.end
            jobs_by_room[job.room].append((job.start, end))
            jobs_by_task[job.task_arn].append((job.room, (job.start, end)))
        self.seconds = self.idle = self.within_grace = self.billed_seconds = self.heartbeat_writes = 0.0
        self.starting = self.cold_start_max = 0.0
        # Slot time the rooms' jobs used: what the agents need, whatever the tasks' sizes.
        self.job_seconds = sum(end - start for spans in jobs_by_room.values() for start, end in spans)
        for task in ledger.tasks.values():
            end = task.ended_at if task.ended_at is not None else ledger.end
            life = end - task.launched_at
            self.seconds += life
            self.billed_seconds += max(life, FARGATE_MINIMUM_SECONDS)
            ready = end if task.ready_at is None else min(max(task.ready_at, task.launched_at), end)
            self.starting += ready - task.launched_at
            if task.ready_at is not None and not task.prewarmed:
                self.cold_start_max = max(self.cold_start_max, task.ready_at - task.launched_at)
            if worker.heartbeat_s and task.ready_at is not None:
                self.heartbeat_writes += max(0.0, end - task.ready_at) // worker.heartbeat_s
            spans = (
                [(task.room, (task.launched_at, end))]
                if task.room is not None and not worker.any_room
                else jobs_by_task.get(task.arn, [])
            )
            # A worker with several slots serves while any of its rooms has humans: the union.
            serving_spans: list[Interval] = []
            grace_spans: list[Interval] = []
            for room, (start, stop) in spans:
                by_room[room].append((start, stop))
                serving = max(start, ready)  # a task launched for a room serves it once ready
                if stop > serving:
                    serving_spans += humans.occupancy.get(room, EMPTY).within(serving, stop)
                    grace_spans += humans.grace_windows.get(room, EMPTY).within(serving, stop)
            busy, grace = Union(serving_spans), Union(grace_spans)
            self.within_grace += grace.length - sum(busy.covered(s, e) for s, e in grace.spans)
            self.idle += (end - ready) - busy.length
        self.duplicates = {room: overlap_seconds(spans) for room, spans in by_room.items()}
        self.duplicate_jobs = sum(overlap_seconds(spans) for spans in jobs_by_room.values())
        self.in_room = {room: Union(spans) for room, spans in jobs_by_room.items()}


class Waits:
    """How long each human connection waited for an agent's job in its room, and which sessions
    left humans without one for ``STRANDED_AFTER_S`` at a stretch."""

    def __init__(self, trace: Trace, in_room: Mapping[str, Union]) -> None:
        self.waits: list[float] = []
        self.first: list[float] = []  # each session's first join to its agent (inf: never)
        self.without = 0.0
        self.stranded = 0
        for s in trace.sessions:
            served = in_room.get(s.room, EMPTY)
            for p in s.presences:
                arrived = served.next_cover(p.join)
                self.waits.append((p.leave if arrived is None else min(arrived, p.leave)) - p.join)
                self.without += (p.leave - p.join) - served.covered(p.join, p.leave)
            people = Union((p.join, p.leave) for p in s.presences)
            first_join, last_leave = people.spans[0][0], people.spans[-1][1]
            arrived = served.next_cover(first_join)
            self.first.append(math.inf if arrived is None or arrived >= last_leave else arrived - first_join)
            gaps = (b - a for span in people.spans for a, b in served.gaps_within(*span))
            self.stranded += any(gap >= STRANDED_AFTER_S for gap in gaps)
        self.served_first = [w for w in self.first if math.isfinite(w)]


class FirstWebhook:
    """Per room session, from the first attempt to deliver its first human's join webhook: until
    a dispatch exists, and until the agent's job runs in the room, each cut off when the
    session's humans have all left (a session none of whose join webhooks arrived is left out:
    no webhook started the control plane's clock)."""

    def __init__(self, trace: Trace, ledger: Ledger, in_room: Mapping[str, Union]) -> None:
        self.dispatch: list[float] = []
        self.agent: list[float] = []
        self.below_capacity: list[float] = []
        for s in trace.sessions:
            first = ledger.first_join_webhook.get((s.room, s.index))
            if first is None:
                continue
            at, slot_free = first
            last_leave = max(p.leave for p in s.presences)
            dispatched = ledger.first_dispatch.get((s.room, s.index), math.inf)
            dispatch_wait = max(0.0, min(dispatched, last_leave) - at)
            arrived = in_room.get(s.room, EMPTY).next_cover(at)
            agent_wait = max(0.0, min(arrived if arrived is not None else math.inf, last_leave) - at)
            self.dispatch.append(dispatch_wait)
            self.agent.append(agent_wait)
            if slot_free:
                self.below_capacity.append(dispatch_wait)
