"""The capacity model: what this project asks of AWS and LiveKit at N concurrent rooms.

Built from the simulator's counts for the ``default`` policy over the day trace. Every count
the day produced (calls, writes, launches, Lambda time) is divided by the day's room-seconds
(seconds of rooms with humans in them): a rate per concurrent room. Multiplied by N it is the
steady demand with N rooms open, which is compared with each limit; ``rooms_at_limit`` is the N
at which that limit is reached. The smallest binds first. Per-room rates hold at any N because
almost every cost here grows with rooms: webhooks and launches with sessions, heartbeats with
live tasks, the minute's sweep with tracked rooms (see docs/capacity.md for what does not scale
so). One does not: the warm pool lists every live worker item for each slot decision, so its
reads grow with decisions (rooms) times workers (rooms), as N squared (``exponent`` 2).

``python -m sim.capacity [--results bench/results/policies.json] [--rooms 100000]`` prints the
table as Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.policies.default import ITEMS_PER_READ_UNIT
from sim.report import AGENT_TASK_VCPU

DEFAULT_RESULTS = Path("bench/results/policies.json")
ROOMS = 100_000


@dataclass(frozen=True)
class Limit:
    resource: str
    unit: str
    per_room: float  # demand per concurrent room, in ``unit``
    limit: float | None  # None: set per account (a Service Quota to request)
    source: str
    exponent: int = 1  # demand = per_room x N ** exponent

    def demand(self, rooms: int) -> float:
        return self.per_room * float(rooms) ** self.exponent

    @property
    def rooms_at_limit(self) -> float:
        if self.limit is None:
            return math.nan
        return (self.limit / self.per_room) ** (1 / self.exponent) if self.per_room else math.inf


def limits(policy: Mapping[str, Any]) -> list[Limit]:
    """Each limit the default policy meets, with its demand per concurrent room."""
    room_seconds = policy["room_hours"] * 3600
    per_session = policy["calls_per_room"]
    session_count = policy["sessions"]
    invocations = policy["lambda_invocations"]
    lambda_ms = policy["lambda_ms_per_invocation"]
    concurrency = sum(invocations[f] * lambda_ms[f] / 1000 for f in invocations) / room_seconds
    calls = policy["calls"]
    run_task = calls.get("ecs.RunTask", 0)
    livekit = sum(
        count for op, count in calls.items() if op.startswith("livekit.") and op != "livekit.failed"
    )
    webhooks = per_session["webhook_deliveries"] * session_count
    # The pool's listings of every live worker item: per listing ~ tasks per concurrent room x N
    # items, 4 to a read unit; listings come with decisions, so per concurrent room.
    listing_units = policy.get("worker_listing_read_units", 0)
    listings = policy.get("worker_listings", 0)
    tasks_per_room = policy["agent_seconds"] / room_seconds
    reads = per_session["dynamodb_reads"] * session_count - listing_units
    quadratic = (
        [
            Limit(
                "DynamoDB reads: the pool's worker listings",
                "RRU/s",
                listings / room_seconds * tasks_per_room / ITEMS_PER_READ_UNIT,
                40_000.0,
                "the same table quota; every slot decision queries all live worker items"
                f" ({listings / session_count:.1f} listings a session, ~{tasks_per_room:.2f} x N items each)",
                exponent=2,
            )
        ]
        if listings
        else []
    )
    return [
        *quadratic,
        Limit(
            "Fargate task launches",
            "tasks/s",
            policy["task_starts"] / room_seconds,
            20.0,
            "AWS Fargate throttling quotas (ECS developer guide): a bucket of 100 launches refilled at"
            " 20/s, per account and Region",
        ),
        Limit(
            "Fargate On-Demand vCPUs running",
            "vCPU",
            policy["agent_seconds"] / room_seconds * AGENT_TASK_VCPU,
            None,
            "Service Quotas, Fargate On-Demand vCPU resource count: set per account and Region;"
            " request what the demand column says",
        ),
        Limit(
            "ECS RunTask calls",
            "calls/s",
            run_task / room_seconds,
            20.0,
            "same page: RunTask 20 calls/s burst and sustained, ≤ 10 tasks per call",
        ),
        Limit(
            "LiveKit server API",
            "requests/min",
            livekit / room_seconds * 60,
            1_000.0,
            "LiveKit Cloud quotas and limits: 1,000 API requests per minute per project (documented"
            " default; paid plans negotiate more); a self-hosted server has no such limit",
        ),
        Limit(
            "Lambda concurrency",
            "concurrent executions",
            concurrency,
            1_000.0,
            "Lambda quotas: 1,000 concurrent executions per account and Region by default (raisable);"
            " each function scales by 1,000 environments per 10 s",
        ),
        Limit(
            "DynamoDB writes",
            "WRU/s",
            per_session["dynamodb_writes"] * session_count / room_seconds,
            40_000.0,
            "DynamoDB on-demand: 40,000 write request units/s per table (account table quota, raisable)",
        ),
        Limit(
            "DynamoDB reads",
            "RRU/s",
            reads / room_seconds,
            40_000.0,
            "DynamoDB on-demand: 40,000 read request units/s per table (account table quota, raisable)",
        ),
        Limit(
            "API Gateway HTTP API (webhooks)",
            "requests/s",
            webhooks / room_seconds,
            10_000.0,
            "API Gateway quotas: 10,000 requests/s per account and Region across APIs (burst 5,000)",
        ),
        Limit(
            "SQS timer queue",
            "requests/s",
            per_session["sqs"] * session_count / room_seconds,
            math.inf,
            "SQS quotas: standard queues take a nearly unlimited number of calls per second; the"
            " timer function's pollers (≤ 1,000 concurrent batches) count under Lambda concurrency",
        ),
    ]


def table(rows: Sequence[Limit], rooms: int) -> str:
    lines = [
        f"| limit | demand per room | demand at {rooms:,} rooms | limit | rooms at the limit | source |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in sorted(rows, key=lambda r: (math.isnan(r.rooms_at_limit), r.rooms_at_limit)):
        per_room = f"{row.per_room:.4g} {row.unit}" + (" x N" if row.exponent == 2 else "")
        lines.append(
            f"| {row.resource} | {per_room} | {row.demand(rooms):,.0f} {row.unit}"
            f" | {_number(row.limit)} | {_number(row.rooms_at_limit)} | {row.source} |"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "per account"
    return "no practical limit" if math.isinf(value) else f"{value:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--rooms", type=int, default=ROOMS)
    parser.add_argument("--policy", default="default")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.results.read_text(encoding="utf-8"))
    except FileNotFoundError:
        parser.error(
            f"{args.results} does not exist: run `make simulate` first (it writes it), or pass --results"
        )
    if args.policy not in doc["policies"]:
        parser.error(f"no policy {args.policy!r} in {args.results}: one of {', '.join(doc['policies'])}")
    policy = doc["policies"][args.policy]
    print(table(limits(policy), args.rooms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
