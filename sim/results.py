"""The JSON document ``make simulate`` writes (``bench/results/policies.json``): the traces, the
prices, the goals and every row's figures."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.goals import goals
from sim.measures import STRANDED_AFTER_S
from sim.model import LIVEKIT_JOB_ASSIGNMENT_S
from sim.prices import PRICES
from sim.report import GRACE_SECONDS, REPORT_VERSION, PolicyResult
from sim.traces import Trace


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
