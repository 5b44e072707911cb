"""``POST /gc``: one sweep now, the same the schedule runs every minute, and its summary.

A sweep running beside the scheduled one is safe (every write is conditional, every step
idempotent); it stops starting rooms when the invocation's time runs short, and the next
sweep resumes where it stopped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from api.models import SweepSummary
from api.wiring import ApiDeps


def sweep_now(deps: ApiDeps, time_left: Callable[[], float]) -> SweepSummary:
    report = deps.sweeper().sweep(remaining_seconds=time_left)
    return SweepSummary.model_validate(asdict(report))
