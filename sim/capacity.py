"""The capacity model: what this project asks of AWS and LiveKit at N concurrent rooms.

``python -m sim.capacity --rooms 100000`` (``make capacity``) simulates a seeded day for each row
(``default``, ``adaptive``, ``pooled_4``, ``pooled_8``) on each path (``webhook``: LiveKit's
webhooks alone; ``join_api``: the app also asks ``POST /rooms/{room}/join`` as each session
opens), takes every count the run produced (LiveKit calls by operation, launches, RunTask calls,
table reads and writes, Lambda time) and divides it by the day's room-seconds (seconds of rooms
with humans in them): a rate per concurrent room. Times N it is the steady demand with N rooms
open, compared with each limit; ``rooms_at_limit`` is the N at which the limit is reached, and
the smallest of a row is its ``binding``. Nothing per session is typed in here: when the core
makes fewer calls, the next run shows it.

Two counts do not grow with rooms as the rest do. The sweep's ``ListRooms`` is one call a minute
whatever the rooms (a fixed demand, not a rate per room). And the warm pool's top-ups list its free
and starting workers (the slot index): decisions (rooms) times the pool (which grows with the
rooms), as N squared (``exponent`` 2) with a small constant; a slot decision itself reads a few
items whatever N (the slot index), and the sweep's listing is once a minute.

Writes ``bench/results/capacity.json`` and prints each row's limits as Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control_plane.launch_limit import LaunchLimits, backlog_seconds
from sim import traces
from sim.policies.default import (
    ITEMS_PER_READ_UNIT,
    POOL_QUERIES,
    Adaptive,
    DefaultPolicy,
    PooledEight,
    PooledFour,
)
from sim.run import quiet_core, simulate

ROOMS = 100_000
SIMULATED_ROOMS = 2_000
SEED = 7
ROWS: dict[str, type[DefaultPolicy]] = {
    "default": DefaultPolicy,
    "adaptive": Adaptive,
    "pooled_4": PooledFour,
    "pooled_8": PooledEight,
}
PATHS = ("join_api", "webhook")
DEFAULT_OUT = Path("bench/results/capacity.json")
LIVEKIT_API_PER_MINUTE = 1_000.0
FARGATE_LAUNCHES_PER_S = 20.0
RUNTASK_CALLS_PER_S = 20.0
LAMBDA_CONCURRENCY = 1_000.0
TABLE_UNITS_PER_S = 40_000.0
HTTP_API_PER_S = 10_000.0
# The vCPU quota to request: the slots the rooms' jobs fill (measured), at the task size per slot,
# with this headroom for the warm pool's free slots and recycled workers' emptying slots. The
# tasks' own vCPU-seconds on a small simulated day overstate it: there a pooled task idles most
# of its slots, a share that shrinks as rooms grow (the pool keeps ~ the arrivals of one cold
# start free, a few percent of N at 100,000 rooms).
VCPU_HEADROOM = 1.25


@dataclass(frozen=True)
class Limit:
    resource: str
    unit: str
    per_room: float  # demand per concurrent room, in ``unit``
    limit: float | None  # None: set per account (a Service Quota to request)
    source: str
    exponent: int = 1  # demand = fixed + per_room x N ** exponent
    fixed: float = 0.0  # demand that does not grow with rooms

    def demand(self, rooms: int) -> float:
        return self.fixed + self.per_room * float(rooms) ** self.exponent

    @property
    def rooms_at_limit(self) -> float | None:
        """N at which the demand reaches the limit (None: a quota set per account)."""
        if self.limit is None:
            return None
        if self.per_room <= 0 or math.isinf(self.limit):
            return math.inf
        return float(max(0.0, (self.limit - self.fixed) / self.per_room) ** (1 / self.exponent))

    def as_json(self, rooms: int) -> dict[str, Any]:
        at = self.rooms_at_limit
        return {
            "resource": self.resource,
            "unit": self.unit,
            "demand_per_room": self.per_room,
            "demand_growth": "N^2" if self.exponent == 2 else "N",
            "fixed_demand": self.fixed,
            "demand_at_n": self.demand(rooms),
            "limit": None if self.limit is None or math.isinf(self.limit) else self.limit,
            "rooms_at_limit": None if at is None or math.isinf(at) else round(at),
            "source": self.source,
        }


def limits(f: Mapping[str, Any]) -> list[Limit]:
    """Each limit a run's figures (one row, one path, from ``report.measure``) meet."""
    room_seconds = f["room_hours"] * 3600
    calls: Mapping[str, int] = f["calls"]
    invocations: Mapping[str, int] = f["lambda_invocations"]
    lambda_ms: Mapping[str, float] = f["lambda_ms_per_invocation"]
    duration_min = f["duration_s"] / 60
    sweeps = invocations.get("sweeper", 0)
    livekit = sum(n for op, n in calls.items() if op.startswith("livekit.") and op != "livekit.failed")
    # The pool's listings (every free or starting worker, one query per slot-index partition)
    # grow with the pool, and the pool with the rooms: items per listing scale with N from the
    # simulated mean concurrency. Every other worker read is a bounded query (a decision's few
    # open workers) or the sweep's, once a minute: a rate per room like the rest.
    pool_listings = f.get("pool_listings", 0)
    pool_items = f.get("pool_items_per_listing", 0.0)
    concurrent = room_seconds / f["duration_s"] if f["duration_s"] else 0.0
    per_session = f["calls_per_room"]
    sessions = f["sessions"]
    pool_units = pool_listings * max(POOL_QUERIES, pool_items / ITEMS_PER_READ_UNIT)
    reads = per_session["dynamodb_reads"] * sessions - pool_units + pool_listings * POOL_QUERIES
    concurrency = sum(invocations[fn] * lambda_ms[fn] / 1000 for fn in invocations) / room_seconds
    quadratic = [
        Limit(
            "DynamoDB reads: the pool's listings of its free and starting workers",
            "RRU/s",
            pool_listings
            / room_seconds
            * (pool_items / concurrent if concurrent else 0.0)
            / ITEMS_PER_READ_UNIT,
            TABLE_UNITS_PER_S,
            "the table's read quota (below); each pool top-up queries the slot index's free and"
            f" starting workers ({pool_listings / sessions:.1f} a session, {pool_items:.1f} items each"
            f" at {concurrent:.0f} concurrent rooms, growing with the pool)",
            exponent=2,
        )
    ]
    return [
        *(quadratic if pool_listings and pool_items else []),
        Limit(
            "LiveKit server API",
            "requests/min",
            (livekit - sweeps) / room_seconds * 60,
            LIVEKIT_API_PER_MINUTE,
            "LiveKit Cloud quotas and limits (docs.livekit.io/home/cloud/quotas-and-limits): 1,000"
            " server API requests per minute per project by default; a self-hosted server has none."
            " The sweep's one ListRooms a minute is the fixed part",
            fixed=sweeps / duration_min if duration_min else 0.0,
        ),
        Limit(
            "Fargate task launches",
            "tasks/s",
            f["task_starts"] / room_seconds,
            FARGATE_LAUNCHES_PER_S,
            "AWS Fargate throttling quotas (docs.aws.amazon.com/AmazonECS/latest/developerguide/"
            "throttling.html): a bucket of 100 task launches refilled at 20/s, per account and Region",
        ),
        Limit(
            "ECS RunTask calls",
            "calls/s",
            calls.get("ecs.RunTask", 0) / room_seconds,
            RUNTASK_CALLS_PER_S,
            "same page: RunTask 20 calls/s burst and sustained",
        ),
        Limit(
            "Fargate On-Demand vCPUs running",
            "vCPU",
            f["agent_vcpu_seconds"] / room_seconds,
            None,
            "Service Quotas, 'Fargate On-Demand vCPU resource count' (L-3032A538), per account and"
            " Region: request the demand at N, plus the peak's headroom",
        ),
        Limit(
            "Lambda concurrency",
            "concurrent executions",
            concurrency,
            LAMBDA_CONCURRENCY,
            "Lambda quotas (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html): 1,000"
            " concurrent executions per account and Region by default (raisable)",
        ),
        Limit(
            "DynamoDB writes",
            "WRU/s",
            per_session["dynamodb_writes"] * sessions / room_seconds,
            TABLE_UNITS_PER_S,
            "DynamoDB service quotas (docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
            "ServiceQuotas.html): 40,000 write request units/s per on-demand table (raisable)",
        ),
        Limit(
            "DynamoDB reads",
            "RRU/s",
            reads / room_seconds,
            TABLE_UNITS_PER_S,
            "same page: 40,000 read request units/s per on-demand table (raisable)",
        ),
        Limit(
            "API Gateway HTTP API (webhooks and joins)",
            "requests/s",
            (per_session["webhook_deliveries"] * sessions + invocations.get("api", 0)) / room_seconds,
            HTTP_API_PER_S,
            "API Gateway quotas (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html):"
            " 10,000 requests/s per account and Region across APIs",
        ),
        Limit(
            "SQS timer queue",
            "requests/s",
            per_session["sqs"] * sessions / room_seconds,
            math.inf,
            "SQS quotas (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
            "quotas-messages.html): standard queues take a nearly unlimited number of calls per second",
        ),
    ]


def row_figures(f: Mapping[str, Any], rooms: int) -> dict[str, Any]:
    """One row on one path: its limits at ``rooms``, what binds, the vCPU quota to ask for."""
    rows = sorted(limits(f), key=_order)
    bound = [row for row in rows if row.rooms_at_limit is not None]
    binding = min(bound, key=_order)
    sessions = f["sessions"]
    per_slot = f["agent_vcpu_seconds"] / f["agent_seconds"] / f["slots_per_task"] if f["agent_seconds"] else 0
    job_vcpu = f["job_seconds"] / (f["room_hours"] * 3600) * per_slot * rooms
    return {
        "binding": {"resource": binding.resource, "rooms_at_limit": _rounded(binding.rooms_at_limit)},
        "fargate_vcpu_for_jobs": round(job_vcpu),
        "fargate_vcpu_quota_to_request": math.ceil(job_vcpu * VCPU_HEADROOM / 1000) * 1000,
        "livekit_calls_per_session": {
            op.removeprefix("livekit."): round(n / sessions, 3)
            for op, n in sorted(f["calls"].items())
            if op.startswith("livekit.") and op != "livekit.failed"
        },
        "task_starts_per_session": round(f["task_starts"] / sessions, 3),
        "launch_storm": launch_storm(rooms, f["slots_per_task"]),
        "slots_per_task": f["slots_per_task"],
        "limits": [row.as_json(rooms) for row in rows],
    }


def launch_storm(rooms: int, slots: int) -> dict[str, Any]:
    """``rooms`` rooms arriving at once: the tasks they need at ``slots`` rooms a task, and when
    the launch limiter grants the last of them from full buckets (``backlog_seconds``: one task a
    RunTask call for rooms launching their own, the pool's batches of up to 10 when pooled). A
    bound from the limiter's arithmetic, not a simulated storm; add the cold start for the wait."""
    limits = LaunchLimits()
    tasks = math.ceil(rooms / slots)
    per_call = 1 if slots == 1 else limits.tasks_per_call
    return {
        "rooms": rooms,
        "tasks": tasks,
        "tasks_per_call": per_call,
        "launch_backlog_s": round(backlog_seconds(tasks, per_call, limits), 1),
    }


def document(
    runs: Mapping[tuple[str, str], Mapping[str, Any]], rooms: int, day: traces.Trace
) -> dict[str, Any]:
    """``capacity.json``: each row on each path, and the smallest binding of all."""
    out: dict[str, Any] = {}
    for (row, path), f in runs.items():
        out.setdefault(row, {})[path] = row_figures(f, rooms)
    everything = [
        (figures["binding"]["rooms_at_limit"], row, path, figures["binding"]["resource"])
        for row, paths in out.items()
        for path, figures in paths.items()
    ]
    at, row, path, resource = min(everything, key=lambda e: math.inf if e[0] is None else e[0])
    return {
        "rooms": rooms,
        "simulated": {"seed": day.seed, "rooms": day.rooms, "sessions": len(day.sessions)},
        "binding": {"row": row, "path": path, "resource": resource, "rooms_at_limit": at},
        "rows": out,
    }


def table(rows: Sequence[Mapping[str, Any]], rooms: int) -> str:
    """One row's limits (``row_figures(...)["limits"]``) as a Markdown table."""
    lines = [
        f"| limit | demand per room | demand at {rooms:,} rooms | limit | rooms at the limit |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        growth = " x N" if row["demand_growth"] == "N^2" else ""
        fixed = f" + {row['fixed_demand']:.3g}" if row["fixed_demand"] else ""
        lines.append(
            f"| {row['resource']} | {row['demand_per_room']:.4g}{growth}{fixed} {row['unit']}"
            f" | {row['demand_at_n']:,.0f} {row['unit']} | {_number(row['limit'], row['unit'])}"
            f" | {_number(row['rooms_at_limit'], row['unit'])} |"
        )
    return "\n".join(lines)


def _order(row: Limit) -> float:
    at = row.rooms_at_limit
    return math.inf if at is None else at


def _rounded(value: float | None) -> int | None:
    return None if value is None or math.isinf(value) else round(value)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "per account" if unit == "vCPU" else "no practical limit"
    return f"{value:,.0f}"


def _run(row: str, path: str, day_path: Path) -> dict[str, Any]:
    quiet_core()
    day = traces.read(day_path)
    _, result = simulate(day, ROWS[row](join_api=path == "join_api"))
    return {**result.figures, "duration_s": day.end}


def run_all(day_path: Path, rows: Sequence[str], jobs: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Each row on each path over the day in ``day_path``, ``jobs`` processes at a time."""
    keys = [(row, path) for row in rows for path in PATHS]
    if jobs <= 1:
        return {key: _run(*key, day_path) for key in keys}
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {key: pool.submit(_run, *key, day_path) for key in keys}
        return {key: future.result() for key, future in futures.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=ROOMS, help="concurrent rooms to size for")
    parser.add_argument("--simulated-rooms", type=int, default=SIMULATED_ROOMS, help="rooms in the day run")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows of POLICIES")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--jobs", type=int, default=min(2, multiprocessing.cpu_count()))
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))} (known: {', '.join(ROWS)})")
    day = traces.generate(args.seed, args.simulated_rooms)
    day_path = traces.write(day, args.out.parent / "traces" / f"capacity-seed{day.seed}-{day.rooms}.jsonl")
    doc = document(run_all(day_path, rows, args.jobs), args.rooms, day)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    for row, paths in doc["rows"].items():
        for path, figures in paths.items():
            binding = figures["binding"]
            print(
                f"\n{row}, {path} path: binds at {binding['rooms_at_limit']:,} rooms ({binding['resource']});"
                f" Fargate vCPU quota to request: {figures['fargate_vcpu_quota_to_request']:,}\n"
            )
            print(table(figures["limits"], args.rooms))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
