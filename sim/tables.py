"""The report's tables as text: the day's rows, the waits, the launch storm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sim.policies import OUR_POLICIES
from sim.report import PolicyResult

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
    ("drained", "{:,}"),
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
            f["drains_requested"],
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
