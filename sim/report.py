"""From what happened to figures: one policy's run measured, and the launch storm's figures.

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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from control_plane.launch_limit import LaunchLimits, backlog_seconds
from sim.intervals import percentile
from sim.ledger import Ledger, Sample
from sim.measures import Agents, FirstWebhook, Humans, Waits
from sim.model import LIVEKIT_JOB_ASSIGNMENT_S, WorkerBehaviour
from sim.prices import (
    AGENT_TASK_GB,
    AGENT_TASK_VCPU,
    DYNAMODB_READ_USD,
    DYNAMODB_WRITE_USD,
    FARGATE_GB_HOUR_USD,
    FARGATE_VCPU_HOUR_USD,
    HTTP_API_REQUEST_USD,
    LAMBDA_GB_SECOND_USD,
    LAMBDA_MEMORY_GB,
    LAMBDA_REQUEST_USD,
    SQS_REQUEST_USD,
)
from sim.traces import Trace

REPORT_VERSION = 2
GRACE_SECONDS = 60.0
# The warm pool's goal (issue 10): a dispatch within this long of the first human's webhook.
DISPATCH_GOAL_S = 1.0
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
    humans = Humans(trace, grace)
    agents = Agents(ledger, worker, humans)
    waits = Waits(trace, agents.in_room)
    first = FirstWebhook(trace, ledger, agents.in_room)
    cost = _cost(ledger, agents.billed_seconds * worker.slots, agents.heartbeat_writes, service_tasks)
    room_hours = humans.room_seconds / 3600
    figures: dict[str, Any] = {
        "agent_seconds": round(agents.seconds, 1),
        # Tasks are sized per slot: what Fargate bills and the vCPU quota counts.
        "agent_vcpu_seconds": round(agents.seconds * worker.slots * AGENT_TASK_VCPU, 1),
        "slots_per_task": worker.slots,
        "job_seconds": round(agents.job_seconds, 1),
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
        "calls_cut": ledger.calls_cut,
        "drains_requested": ledger.drains_requested,
        "worker_listings": ledger.worker_listings,
        "worker_listing_read_units": ledger.worker_listing_reads,
        "worker_listings_per_session": round(ledger.worker_listings / max(len(trace.sessions), 1), 2),
        "worker_items_per_listing": round(ledger.worker_items_listed / max(ledger.worker_listings, 1), 1),
        "pool_listings": ledger.pool_listings,
        "pool_items_per_listing": round(ledger.pool_items_listed / max(ledger.pool_listings, 1), 1),
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
    billed_seconds: float,  # single-room task seconds: a task's billed life times its slots
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
