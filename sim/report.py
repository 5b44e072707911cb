"""From what happened to figures: per-policy metrics, dollars, the JSON file, the table, charts.

Every figure is computed from the trace (when humans were there) and the ledger (when tasks ran
and agents were in rooms), so it can be checked by hand on a small trace:

- ``agent_seconds``: every task's life, RunTask to stop (what Fargate bills, before its
  one-minute minimum); ``starting_task_seconds``: the part before its worker was ready (cold
  starts, billed whatever the policy);
- ``idle_agent_seconds``: ready task time not serving humans. A task launched for one room
  (the seed policies) serves it while humans are in it; a worker that takes any room's job (this
  project's rows, the fleet) serves a room only while its job runs there with humans in it, so a
  warm worker waiting for a room is idle. ``floor_idle_seconds``: what a grace period must cost,
  the least of the gap, the grace period and the room's ``departure_timeout`` after each time a
  room empties; ``idle_agent_seconds_beyond_grace``: idle time outside those first seconds of
  each gap (for the warm rows this includes the warm pool itself);
- ``duplicate_agent_seconds``: time a room had more than one agent (its launched tasks, or jobs
  in it for workers that take any room's job), counted once per extra agent;
  ``rooms_with_two_agents``: rooms where that happened;
- waits: for each human connection, join until an agent's job runs in the room (0 if one is
  there; the whole stay if none came); ``rooms_without_agent``: room sessions where humans were
  without an agent for ``STRANDED_AFTER_S`` at a stretch;
- per room session, from the first attempt to deliver its first human's join webhook:
  ``dispatch_wait_*`` until a dispatch exists (the control plane's part) and ``agent_wait_*``
  until the agent's job runs in the room (that plus LiveKit's job assignment,
  ``world.LIVEKIT_JOB_ASSIGNMENT_S``), each cut off when the session's humans have all left;
  ``dispatch_within_1s_below_capacity``: the share of sessions that found a free worker when
  that webhook came (below the pool's capacity) whose dispatch existed within 1 s;
- dollars per 1,000 room-hours, a room-hour being an hour of a room with humans in it.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane.launch_limit import LaunchLimits, backlog_seconds
from sim.ledger import Ledger, Sample
from sim.policies import OUR_POLICIES, WARM_ROWS
from sim.traces import Trace
from sim.world import LIVEKIT_JOB_ASSIGNMENT_S, WorkerBehaviour

REPORT_VERSION = 2
GRACE_SECONDS = 60.0
# Humans without an agent this long at a stretch were left without one: longer than the worst
# cold start, a lost first join healed by the sweep, and a 5-minute capacity outage with backoff.
STRANDED_AFTER_S = 600.0
# The warm pool's goals (issue 10): a dispatch within this long of the first human's webhook for
# this share of sessions below the pool's capacity; the adaptive pool's wait and cost bounds.
DISPATCH_GOAL_S = 1.0
DISPATCH_GOAL_SHARE = 0.99
ADAPTIVE_WAIT_P99_GOAL_S = 2.0
ADAPTIVE_COST_RATIO_GOAL = 1.3
# What a Lambda may meet in normal operation (AWS or LiveKit failing, a lost race): anything else
# a handler raised is a bug, in the core or in the simulator.
OPERATIONAL_ERRORS = frozenset(
    {
        "LiveKitUnavailable",
        "LiveKitRateLimited",
        "LaunchFailed",
        "LaunchOutcomeUnknown",
        "RunnerUnavailable",
        "VersionConflict",
    }
)
# The storm's bound: the limiter's backlog for one single-task launch per room, plus the longest
# cold start of the run, plus the Respawn timer's whole-second rounding and the WorkerReady hop.
STORM_SLACK_S = 2.0

# --- prices: us-east-1, on-demand, list rates of the AWS pricing pages named in PRICES["sources"]
# (DynamoDB after its 2024-11-01 on-demand price cut), as quoted in 2026 and checked 2026-11-30 --
# AWS Fargate pricing, Linux/x86: per vCPU-hour and per GB-hour, per second, one-minute minimum.
FARGATE_VCPU_HOUR_USD = 0.04048
FARGATE_GB_HOUR_USD = 0.004445
FARGATE_MINIMUM_SECONDS = 60.0
# The template's agent task size (template.yaml AgentCpu 1024, AgentMemory 2048 defaults).
AGENT_TASK_VCPU = 1.0
AGENT_TASK_GB = 2.0
# AWS Lambda pricing, x86: per request and per GB-second; the template's functions use 512 MB.
LAMBDA_REQUEST_USD = 0.20 / 1e6
LAMBDA_GB_SECOND_USD = 0.0000166667
LAMBDA_MEMORY_GB = 0.5
# Amazon DynamoDB on-demand: per write request unit and per read request unit (items ≤ 1 KB
# written, ≤ 4 KB read strongly consistent: one unit each).
DYNAMODB_WRITE_USD = 0.625 / 1e6
DYNAMODB_READ_USD = 0.125 / 1e6
# Amazon SQS standard queue: per request (send, receive and delete each count).
SQS_REQUEST_USD = 0.40 / 1e6
# Amazon API Gateway HTTP API: per request (each webhook delivery attempt).
HTTP_API_REQUEST_USD = 1.00 / 1e6

PRICES = {
    "fargate_vcpu_hour_usd": FARGATE_VCPU_HOUR_USD,
    "fargate_gb_hour_usd": FARGATE_GB_HOUR_USD,
    "fargate_minimum_seconds": FARGATE_MINIMUM_SECONDS,
    "agent_task_vcpu": AGENT_TASK_VCPU,
    "agent_task_gb": AGENT_TASK_GB,
    "lambda_request_usd": LAMBDA_REQUEST_USD,
    "lambda_gb_second_usd": LAMBDA_GB_SECOND_USD,
    "lambda_memory_gb": LAMBDA_MEMORY_GB,
    "dynamodb_write_request_usd": DYNAMODB_WRITE_USD,
    "dynamodb_read_request_usd": DYNAMODB_READ_USD,
    "sqs_request_usd": SQS_REQUEST_USD,
    "http_api_request_usd": HTTP_API_REQUEST_USD,
    "region": "us-east-1",
    "checked": "2026-11-30",
    "sources": [
        "aws.amazon.com/fargate/pricing",
        "aws.amazon.com/lambda/pricing",
        "aws.amazon.com/dynamodb/pricing/on-demand",
        "aws.amazon.com/sqs/pricing",
        "aws.amazon.com/api-gateway/pricing",
    ],
}

Interval = tuple[float, float]


# --- intervals ------------------------------------------------------------------------------


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of ``intervals`` (empty ones dropped)."""
    merged: list[list[float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


class Union:
    """A merged set of intervals that answers "how much of [a, b) is covered" quickly."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        self.spans = merge(intervals)
        self._ends = [e for _, e in self.spans]

    def covered(self, start: float, end: float) -> float:
        total = 0.0
        index = bisect.bisect_right(self._ends, start)
        while index < len(self.spans) and self.spans[index][0] < end:
            s, e = self.spans[index]
            total += min(e, end) - max(s, start)
            index += 1
        return total

    def next_cover(self, at: float) -> float | None:
        """The first moment at or after ``at`` that is covered (``at`` itself if covered)."""
        index = bisect.bisect_right(self._ends, at)
        if index == len(self.spans):
            return None
        start, _ = self.spans[index]
        return max(start, at)

    def gaps_within(self, start: float, end: float) -> list[Interval]:
        """The parts of [start, end) not covered."""
        gaps: list[Interval] = []
        cursor = start
        index = bisect.bisect_right(self._ends, start)
        while index < len(self.spans) and self.spans[index][0] < end:
            s, e = self.spans[index]
            if s > cursor:
                gaps.append((cursor, s))
            cursor = max(cursor, e)
            index += 1
        if cursor < end:
            gaps.append((cursor, end))
        return gaps

    @property
    def length(self) -> float:
        return sum(e - s for s, e in self.spans)


def overlap_seconds(intervals: Sequence[Interval]) -> float:
    """Seconds covered by more than one interval, counted once per extra interval."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    total, depth, last = 0.0, 0, 0.0
    for at, step in edges:
        if depth > 1:
            total += (depth - 1) * (at - last)
        depth += step
        last = at
    return total


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


# --- figures --------------------------------------------------------------------------------


@dataclass
class PolicyResult:
    """What one run produced: figures for the JSON, and series for the charts."""

    name: str
    figures: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    first_waits: list[float] = field(default_factory=list)  # first join of each session (storm chart)


def measure(
    name: str,
    trace: Trace,
    ledger: Ledger,
    worker: WorkerBehaviour,
    service_tasks: Sequence[tuple[float, float]] = (),
    grace: float = GRACE_SECONDS,
) -> PolicyResult:
    """Every figure of one policy's run over ``trace``."""
    humans = _Humans(trace, grace)
    agents = _Agents(ledger, worker, humans)
    waits = _Waits(trace, agents.in_room)
    first = _FirstWebhook(trace, ledger, agents.in_room)
    cost = _cost(ledger, agents.billed_seconds, agents.heartbeat_writes, service_tasks)
    room_hours = humans.room_seconds / 3600
    figures: dict[str, Any] = {
        "agent_seconds": round(agents.seconds, 1),
        "starting_task_seconds": round(agents.starting, 1),
        "idle_agent_seconds": round(agents.idle, 1),
        "idle_agent_seconds_beyond_grace": round(agents.idle - agents.within_grace, 1),
        "floor_idle_seconds": round(humans.floor, 1),
        "duplicate_agent_seconds": round(sum(agents.duplicates.values()), 1),
        "duplicate_job_seconds": round(agents.duplicate_jobs, 1),
        "rooms_with_two_agents": sum(1 for seconds in agents.duplicates.values() if seconds > 0),
        "rooms_without_agent": waits.stranded,
        "wait_p50_s": round(percentile(waits.waits, 0.50), 1),
        "wait_p95_s": round(percentile(waits.waits, 0.95), 1),
        "wait_p99_s": round(percentile(waits.waits, 0.99), 1),
        "first_join_wait_p50_s": round(percentile(waits.served_first, 0.50), 1),
        "first_join_wait_p99_s": round(percentile(waits.served_first, 0.99), 1),
        "sessions_never_served": len(waits.first) - len(waits.served_first),
        "dispatch_wait_p50_s": round(percentile(first.dispatch, 0.50), 2),
        "dispatch_wait_p95_s": round(percentile(first.dispatch, 0.95), 2),
        "dispatch_wait_p99_s": round(percentile(first.dispatch, 0.99), 2),
        "dispatch_wait_max_s": round(max(first.dispatch, default=0.0), 2),
        "agent_wait_p50_s": round(percentile(first.agent, 0.50), 2),
        "agent_wait_p95_s": round(percentile(first.agent, 0.95), 2),
        "agent_wait_p99_s": round(percentile(first.agent, 0.99), 2),
        "livekit_job_assignment_s": LIVEKIT_JOB_ASSIGNMENT_S,
        "sessions_with_join_webhook": len(first.dispatch),
        "sessions_below_capacity": len(first.below_capacity),
        "dispatch_within_1s_below_capacity": round(_share_within(first.below_capacity, DISPATCH_GOAL_S), 4),
        "dispatch_within_1s": round(_share_within(first.dispatch, DISPATCH_GOAL_S), 4),
        "jobs_dropped": ledger.jobs_dropped,
        "worker_listings": ledger.worker_listings,
        "worker_listing_read_units": ledger.worker_listing_reads,
        "worker_listings_per_session": round(ledger.worker_listings / max(len(trace.sessions), 1), 2),
        "worker_items_per_listing": round(ledger.worker_items_listed / max(ledger.worker_listings, 1), 1),
        "cold_start_max_s": round(agents.cold_start_max, 1),
        "human_seconds_waiting": round(sum(waits.waits), 1),
        "human_seconds_without_agent": round(waits.without, 1),
        "task_starts": ledger.task_starts,
        "failed_launches": ledger.failed_launches,
        "launches_throttled": ledger.launches_throttled,
        "launches_refused": ledger.launches_refused,
        "crashed_tasks": sum(1 for t in ledger.tasks.values() if t.crashed),
        "room_hours": round(room_hours, 2),
        "sessions": len(trace.sessions),
        "calls_per_room": _calls_per_room(ledger, agents.heartbeat_writes, len(trace.sessions)),
        "calls": dict(sorted(ledger.calls.items())),
        "lambda_invocations": dict(sorted(ledger.invocations.items())),
        "calls_by_function": {
            function: {
                "livekit": ledger.livekit_calls_by_function[function],
                "aws": ledger.aws_calls_by_function[function],
            }
            for function in sorted(ledger.invocations)
        },
        "lambda_ms_per_invocation": {
            function: round(ledger.lambda_ms[function] / count, 1)
            for function, count in sorted(ledger.invocations.items())
        },
        "webhooks": {
            "delivered": ledger.webhooks_delivered,
            "failed_attempts": ledger.webhook_attempts_failed,
            "dropped": ledger.webhooks_dropped,
        },
        "errors": dict(ledger.errors.most_common()),
        "unexpected_errors": {
            where: count
            for where, count in ledger.errors.most_common()
            if where.rsplit(": ", 1)[-1] not in OPERATIONAL_ERRORS
        },
        "timer_messages_dead": ledger.timer_messages_dead,
        "sweeps_failed": ledger.sweeps_failed,
        "cost_usd": {key: round(value, 4) for key, value in cost.items()},
        "cost_per_1000_room_hours_usd": round(cost["total"] / room_hours * 1000, 2) if room_hours else 0.0,
        "run_wall_s": round(ledger.wall_seconds, 1),
        "run_cpu_s": round(ledger.cpu_seconds, 1),
    }
    return PolicyResult(name, figures, ledger.samples, waits.first)


EMPTY = Union(())


class _Humans:
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


class _Agents:
    """Agent time by room: a task launched for a room (a worker that declines other rooms' jobs)
    counts for it from RunTask to stop; a worker that takes any room's job counts for a room only
    while its job runs there. Idle time starts when the worker is ready."""

    def __init__(self, ledger: Ledger, worker: WorkerBehaviour, humans: _Humans) -> None:
        by_room: dict[str, list[Interval]] = defaultdict(list)
        jobs_by_room: dict[str, list[Interval]] = defaultdict(list)
        jobs_by_task: dict[str, list[tuple[str, Interval]]] = defaultdict(list)
        for job in ledger.jobs:
            end = job.end if job.end is not None else ledger.end
            jobs_by_room[job.room].append((job.start, end))
            jobs_by_task[job.task_arn].append((job.room, (job.start, end)))
        self.seconds = self.idle = self.within_grace = self.billed_seconds = self.heartbeat_writes = 0.0
        self.starting = self.cold_start_max = 0.0
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
            busy = 0.0
            for room, (start, stop) in spans:
                by_room[room].append((start, stop))
                serving = max(start, ready)  # a task launched for a room serves it once ready
                if stop > serving:
                    busy += humans.occupancy.get(room, EMPTY).covered(serving, stop)
                    self.within_grace += humans.grace_windows.get(room, EMPTY).covered(serving, stop)
            self.idle += (end - ready) - busy
        self.duplicates = {room: overlap_seconds(spans) for room, spans in by_room.items()}
        self.duplicate_jobs = sum(overlap_seconds(spans) for spans in jobs_by_room.values())
        self.in_room = {room: Union(spans) for room, spans in jobs_by_room.items()}


class _Waits:
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


class _FirstWebhook:
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


def _share_within(waits: Sequence[float], bound: float) -> float:
    """The share of ``waits`` at most ``bound`` (1 for none: nothing missed the bound)."""
    return sum(1 for w in waits if w <= bound) / len(waits) if waits else 1.0


def _calls_per_room(ledger: Ledger, heartbeat_writes: float, sessions: int) -> dict[str, float]:
    per = max(sessions, 1)
    ecs = sum(count for op, count in ledger.calls.items() if op.startswith("ecs."))
    livekit = sum(
        count for op, count in ledger.calls.items() if op.startswith("livekit.") and op != "livekit.failed"
    )
    return {
        "livekit": round(livekit / per, 2),
        "ecs": round(ecs / per, 2),
        "dynamodb_reads": round(ledger.dynamodb_reads / per, 2),
        "dynamodb_writes": round((ledger.dynamodb_writes + heartbeat_writes) / per, 2),
        "sqs": round(ledger.sqs_requests / per, 2),
        "lambda_invocations": round(sum(ledger.invocations.values()) / per, 2),
        "webhook_deliveries": round((ledger.webhooks_delivered + ledger.webhook_attempts_failed) / per, 2),
    }


def _cost(
    ledger: Ledger,
    billed_seconds: float,
    heartbeat_writes: float,
    service_tasks: Sequence[tuple[float, float]],
) -> dict[str, float]:
    task_hour = AGENT_TASK_VCPU * FARGATE_VCPU_HOUR_USD + AGENT_TASK_GB * FARGATE_GB_HOUR_USD
    service_hour = sum(cpu * FARGATE_VCPU_HOUR_USD + gb * FARGATE_GB_HOUR_USD for cpu, gb in service_tasks)
    invocations = sum(ledger.invocations.values())
    cost = {
        "fargate_agents": billed_seconds / 3600 * task_hour,
        "fargate_service": ledger.end / 3600 * service_hour,
        "lambda": invocations * LAMBDA_REQUEST_USD
        + sum(ledger.lambda_ms.values()) / 1000 * LAMBDA_MEMORY_GB * LAMBDA_GB_SECOND_USD,
        "dynamodb": (ledger.dynamodb_writes + heartbeat_writes) * DYNAMODB_WRITE_USD
        + ledger.dynamodb_reads * DYNAMODB_READ_USD,
        "sqs": ledger.sqs_requests * SQS_REQUEST_USD,
        "api_gateway": (ledger.invocations.get("webhook", 0)) * HTTP_API_REQUEST_USD,
    }
    cost["total"] = sum(cost.values())
    return cost


# --- storm ----------------------------------------------------------------------------------


def storm_figures(result: PolicyResult, limits: LaunchLimits | None = None) -> dict[str, Any]:
    """The launch storm's figures: failed launches, how long each room waited for its agent, and
    the bound every room's dispatch should meet: the launch limiter's backlog for one launch per
    room (``control_plane.launch_limit.backlog_seconds``, single-task RunTask calls as rooms make
    them), plus the longest cold start of the run, plus ``STORM_SLACK_S``."""
    waits = result.first_waits
    finite = [w for w in waits if math.isfinite(w)]
    f = result.figures
    limiter_s = backlog_seconds(len(waits), 1, limits or LaunchLimits())
    bound = limiter_s + f["cold_start_max_s"] + STORM_SLACK_S
    return {
        "rooms": len(waits),
        "failed_launches": f["failed_launches"],
        "launches_throttled": f["launches_throttled"],
        "task_starts": f["task_starts"],
        "wait_p50_s": round(percentile(finite, 0.50), 1),
        "wait_p95_s": round(percentile(finite, 0.95), 1),
        "wait_p99_s": round(percentile(finite, 0.99), 1),
        "wait_max_s": round(max(finite, default=0.0), 1),
        "rooms_never_served": len(waits) - len(finite),
        "dispatch_wait_p50_s": f["dispatch_wait_p50_s"],
        "dispatch_wait_p99_s": f["dispatch_wait_p99_s"],
        "dispatch_wait_max_s": f["dispatch_wait_max_s"],
        "limiter_backlog_s": round(limiter_s, 1),
        "cold_start_max_s": f["cold_start_max_s"],
        "dispatch_bound_s": round(bound, 1),
        "run_wall_s": f["run_wall_s"],
    }


# --- goals, table, JSON ---------------------------------------------------------------------

Goal = tuple[str, str, bool | None]


def goals(
    day: Mapping[str, PolicyResult],
    rooms: int,
    storm: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Goal]:
    """The issues' goals, each as (goal, what was measured, met or None if not measured):
    issue 9's for ``default``, and issue 10's for this project's rows (``OUR_POLICIES``)."""
    lines: list[Goal] = []
    default = day.get("default")
    if default is not None:
        lines += _simulator_goals(default, day.get("ttl_sweep"), rooms)
    ours = {name: day[name] for name in OUR_POLICIES if name in day}
    if ours:
        lines += _safety_goals(ours)
    for name in WARM_ROWS:
        if name in day:
            lines.append(_dispatch_goal(name, day[name]))
    adaptive = day.get("adaptive")
    if adaptive is not None:
        lines.append(_adaptive_goal(adaptive, default))
    storm_ours = {name: storm[name] for name in OUR_POLICIES if storm and name in storm}
    if storm_ours:
        lines += _storm_goals(storm_ours)
    return lines


def _simulator_goals(default: PolicyResult, ttl: PolicyResult | None, rooms: int) -> list[Goal]:
    lines: list[Goal] = []
    f = default.figures
    lines.append(
        (
            f"{rooms:,} rooms simulated in under 60 s (default policy)",
            f"{f['run_wall_s']:.1f} s wall, {f['run_cpu_s']:.1f} s CPU",
            f["run_wall_s"] < 60.0 if rooms >= 10_000 else None,
        )
    )
    floor = f["floor_idle_seconds"]
    beyond = f["idle_agent_seconds_beyond_grace"]
    lines.append(
        (
            "idle beyond grace within 5 % of the floor (grace x departures), default",
            f"{beyond:,.0f} s beyond grace = {beyond / floor:.1%} of the {floor:,.0f} s floor"
            f" (all idle {f['idle_agent_seconds']:,.0f} s = {f['idle_agent_seconds'] / floor:.2f}x floor)"
            if floor
            else "no departures",
            beyond <= 0.05 * floor if floor else None,
        )
    )
    if ttl is not None:
        t = ttl.figures
        ratio = t["idle_agent_seconds_beyond_grace"] / beyond if beyond else math.inf
        total_ratio = (
            t["idle_agent_seconds"] / f["idle_agent_seconds"] if f["idle_agent_seconds"] else math.inf
        )
        lines.append(
            (
                "idle at least 4x below the TTL sweep, default",
                f"beyond grace {ratio:,.1f}x lower, all idle {total_ratio:.1f}x lower",
                total_ratio >= 4.0,
            )
        )
    return lines


def _safety_goals(ours: Mapping[str, PolicyResult]) -> list[Goal]:
    """0 duplicate agents and 0 rooms left without one on the faulty trace, for every row; and
    no handler failing on a bug, no sweep failing at all (the next is a minute away)."""
    dup = {name: r.figures["duplicate_agent_seconds"] for name, r in ours.items()}
    without = {name: r.figures["rooms_without_agent"] for name, r in ours.items()}
    unexpected = {name: r.figures["unexpected_errors"] for name, r in ours.items()}
    sweeps = {name: (r.figures["sweeps_failed"], r.figures["errors"]) for name, r in ours.items()}
    return [
        (
            "no handler fails on an unexpected exception (a bug), each of our rows",
            "; ".join(f"{name} {errors or 'none'}" for name, errors in unexpected.items()),
            not any(unexpected.values()),
        ),
        (
            "every scheduled sweep completes, each of our rows",
            ", ".join(
                f"{name} {failed} failed"
                + (
                    f" ({', '.join(f'{k} x{v}' for k, v in errors.items() if k.startswith('sweeper'))})"
                    if failed
                    else ""
                )
                for name, (failed, errors) in sweeps.items()
            ),
            all(failed == 0 for failed, _ in sweeps.values()),
        ),
        (
            "0 duplicate agent-seconds (faulty trace), each of our rows",
            ", ".join(f"{name} {value:g} s" for name, value in dup.items()),
            all(value == 0 for value in dup.values()),
        ),
        (
            "0 rooms left without an agent (faulty trace), each of our rows",
            ", ".join(f"{name} {value}" for name, value in without.items()),
            all(value == 0 for value in without.values()),
        ),
    ]


def _dispatch_goal(name: str, result: PolicyResult) -> Goal:
    f = result.figures
    below = f["sessions_below_capacity"]
    share = f["dispatch_within_1s_below_capacity"]
    return (
        f"below pool capacity, dispatch <= {DISPATCH_GOAL_S:g} s after the first human's webhook"
        f" for >= {DISPATCH_GOAL_SHARE:.0%} of rooms, {name}",
        f"{share:.2%} of {below:,} sessions that found a slot free"
        f" (all sessions: {f['dispatch_within_1s']:.1%} within 1 s,"
        f" dispatch p50/p99 {f['dispatch_wait_p50_s']:.2f}/{f['dispatch_wait_p99_s']:.1f} s)",
        share >= DISPATCH_GOAL_SHARE if below else None,
    )


def _adaptive_goal(adaptive: PolicyResult, default: PolicyResult | None) -> Goal:
    f = adaptive.figures
    p99 = f["agent_wait_p99_s"]
    cost = f["cost_per_1000_room_hours_usd"]
    base = default.figures["cost_per_1000_room_hours_usd"] if default is not None else 0.0
    ratio = cost / base if base else math.inf
    return (
        f"adaptive: wait p99 <= {ADAPTIVE_WAIT_P99_GOAL_S:g} s (first human's webhook -> agent in room,"
        f" LiveKit's {LIVEKIT_JOB_ASSIGNMENT_S:g} s assignment included)"
        f" at <= {ADAPTIVE_COST_RATIO_GOAL:g}x the cost of default",
        f"p99 {p99:.1f} s (p95 {f['agent_wait_p95_s']:.1f} s; per human connection p99"
        f" {f['wait_p99_s']:.1f} s), ${cost:,.2f} = {ratio:.2f}x default's ${base:,.2f}",
        p99 <= ADAPTIVE_WAIT_P99_GOAL_S and ratio <= ADAPTIVE_COST_RATIO_GOAL if base else None,
    )


def _storm_goals(storm: Mapping[str, Mapping[str, Any]]) -> list[Goal]:
    return [
        (
            "launch storm: 0 failed launches, each of our rows",
            ", ".join(f"{name} {s['failed_launches']:,}" for name, s in storm.items()),
            all(s["failed_launches"] == 0 for s in storm.values()),
        ),
        (
            "launch storm: every room dispatched within the limiter's bound + cold start",
            ", ".join(
                f"{name} max {s['dispatch_wait_max_s']:.1f} s of {s['dispatch_bound_s']:.1f} s"
                f" ({s['limiter_backlog_s']:.1f} + {s['cold_start_max_s']:.1f} + {STORM_SLACK_S:g})"
                for name, s in storm.items()
            ),
            all(s["dispatch_wait_max_s"] <= s["dispatch_bound_s"] for s in storm.values()),
        ),
    ]


COLUMNS = (
    ("policy", "{}"),
    ("agent h", "{:,.0f}"),
    ("idle>grace h", "{:,.1f}"),
    ("floor h", "{:,.1f}"),
    ("dup s", "{:,.0f}"),
    ("2-agent rooms", "{}"),
    ("no-agent rooms", "{}"),
    ("wait p50/p95/p99 s", "{}"),
    ("starts", "{:,}"),
    ("failed", "{:,}"),
    ("LK/room", "{:.1f}"),
    ("AWS/room", "{:.1f}"),
    ("$/1k room-h", "{:,.2f}"),
    ("run s", "{:.1f}"),
)


def table_rows(day: Mapping[str, PolicyResult]) -> list[list[str]]:
    rows = []
    for name, result in day.items():
        f = result.figures
        per = f["calls_per_room"]
        aws = per["ecs"] + per["dynamodb_reads"] + per["dynamodb_writes"] + per["sqs"]
        values = (
            name,
            f["agent_seconds"] / 3600,
            f["idle_agent_seconds_beyond_grace"] / 3600,
            f["floor_idle_seconds"] / 3600,
            f["duplicate_agent_seconds"],
            f["rooms_with_two_agents"],
            f["rooms_without_agent"],
            f"{f['wait_p50_s']:.0f}/{f['wait_p95_s']:.0f}/{f['wait_p99_s']:.0f}",
            f["task_starts"],
            f["failed_launches"],
            per["livekit"],
            aws,
            f["cost_per_1000_room_hours_usd"],
            f["run_wall_s"],
        )
        rows.append([fmt.format(value) for (_, fmt), value in zip(COLUMNS, values, strict=True)])
    return rows


WAIT_HEADERS = (
    "policy",
    "dispatch p50/p95/p99 s",
    "agent p50/p95/p99 s",
    "<=1 s below cap",
    "rooms below cap",
    "idle h",
    "starting h",
    "$/1k room-h",
    "x default",
)


def wait_rows(day: Mapping[str, PolicyResult]) -> list[list[str]]:
    """Per room session, from the first human's webhook: until the dispatch exists (the control
    plane), until the agent is in the room (plus LiveKit's assignment); with idle and cost."""
    default = day.get("default")
    base = default.figures["cost_per_1000_room_hours_usd"] if default is not None else 0.0
    rows = []
    for name, result in day.items():
        f = result.figures
        cost = f["cost_per_1000_room_hours_usd"]
        ours = name in OUR_POLICIES  # a slot, as the core counts them, is this project's notion
        rows.append(
            [
                name,
                f"{f['dispatch_wait_p50_s']:.2f}/{f['dispatch_wait_p95_s']:.1f}/{f['dispatch_wait_p99_s']:.1f}",
                f"{f['agent_wait_p50_s']:.2f}/{f['agent_wait_p95_s']:.1f}/{f['agent_wait_p99_s']:.1f}",
                f"{f['dispatch_within_1s_below_capacity']:.2%}" if ours else "-",
                f"{f['sessions_below_capacity']:,}" if ours else "-",
                f"{f['idle_agent_seconds'] / 3600:,.1f}",
                f"{f['starting_task_seconds'] / 3600:,.1f}",
                f"{cost:,.2f}",
                f"{cost / base:.2f}" if base else "-",
            ]
        )
    return rows


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def storm_rows(storm: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            name,
            f"{s['failed_launches']:,}",
            f"{s['task_starts']:,}",
            f"{s['wait_p50_s']:.0f}",
            f"{s['wait_p95_s']:.0f}",
            f"{s['wait_p99_s']:.0f}",
            f"{s['wait_max_s']:.0f}",
            f"{s['rooms_never_served']:,}",
            f"{s['dispatch_wait_max_s']:.1f}",
            f"{s['dispatch_bound_s']:.1f}",
        ]
        for name, s in storm.items()
    ]


STORM_HEADERS = (
    "policy",
    "failed launches",
    "starts",
    "wait p50 s",
    "p95 s",
    "p99 s",
    "max s",
    "never served",
    "dispatch max s",
    "bound s",
)


def document(
    trace: Trace,
    storm_trace: Trace | None,
    day: Mapping[str, PolicyResult],
    storm: Mapping[str, Mapping[str, Any]],
    peak_open_rooms: int,
) -> dict[str, Any]:
    """The JSON written to ``bench/results/policies.json``."""
    policies: dict[str, Any] = {}
    for name, result in day.items():
        policies[name] = dict(result.figures)
        if name in storm:
            policies[name]["storm"] = dict(storm[name])
    return {
        "version": REPORT_VERSION,
        "trace": {
            "name": trace.name,
            "seed": trace.seed,
            "rooms": trace.rooms,
            "sessions": len(trace.sessions),
            "duration_s": round(trace.end, 1),
            "peak_open_rooms": peak_open_rooms,
            "faults": _faults(trace),
        },
        "storm_trace": None
        if storm_trace is None
        else {
            "name": storm_trace.name,
            "seed": storm_trace.seed,
            "rooms": storm_trace.rooms,
            "window_s": storm_trace.traffic.arrival_window_s,
        },
        "grace_seconds": GRACE_SECONDS,
        "stranded_after_s": STRANDED_AFTER_S,
        "livekit_job_assignment_s": LIVEKIT_JOB_ASSIGNMENT_S,
        "prices": PRICES,
        "goals": [
            {"goal": goal, "measured": measured, "met": met}
            for goal, measured, met in goals(day, trace.rooms, storm)
        ],
        "policies": policies,
    }


def _faults(trace: Trace) -> dict[str, Any]:
    f = trace.faults
    return {
        "duplicate_rate": f.duplicate_rate,
        "reorder_rate": f.reorder_rate,
        "loss_rate": f.loss_rate,
        "crashes": len(trace.crashes),
        "outages": [{"service": o.service, "start": o.start, "end": o.end} for o in trace.outages],
        "livekit_error_rate": f.livekit_error_rate,
        "ecs_capacity_error_rate": f.ecs_capacity_error_rate,
        "cold_start_median_s": f.cold_start.median_s,
        "cold_start_p99_s": f.cold_start.p99_s,
    }


def write_json(doc: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path
