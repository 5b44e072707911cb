"""The issues' goals, judged from the figures: each is (goal, what was measured, met or None)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sim.model import LIVEKIT_JOB_ASSIGNMENT_S
from sim.policies import OUR_POLICIES, WARM_ROWS
from sim.report import DISPATCH_GOAL_S, STORM_SLACK_S, PolicyResult

# The warm pool's goals (issue 10): a dispatch within ``DISPATCH_GOAL_S`` of the first human's
# webhook for this share of sessions below the pool's capacity; the adaptive pool's bounds.
DISPATCH_GOAL_SHARE = 0.99
ADAPTIVE_WAIT_P99_GOAL_S = 2.0
ADAPTIVE_COST_RATIO_GOAL = 1.3
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
    cut = {name: r.figures["calls_cut"] for name, r in ours.items()}
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
        (
            "no call cut by its task being stopped while humans were in the room (drain, not stop),"
            " each of our rows",
            ", ".join(f"{name} {value}" for name, value in cut.items()),
            all(value == 0 for value in cut.values()),
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
