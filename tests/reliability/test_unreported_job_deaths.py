"""Jobs killed without their report (OOM, a native crash, ``kill -9``), on the twins.

Ten rooms whose every job dies seconds after it starts, at seeded moments, for fifteen minutes
with the sweep every minute. The worker's ``job_ended`` report is lost, or arrives before the
sweep sees the dead job, or after it, or twice: each dead job must count toward the backoff and
the crash-loop breaker exactly once, whoever sees it, so every room stops at the loop limit
instead of being re-dispatched on every sweep.
"""

from __future__ import annotations

import random

import pytest

from control_plane.room import RoomState
from control_plane.worker_protocol import JobEnded, JobOutcome
from tests.harness import TwinStack
from tests.reliability.invariants import at_most_one_agent, holds, twin_views
from tests.reliability.report import Figures

ROOMS = 10
MINUTES = 15
SWEEP_EVERY_SECONDS = 60
TICK_SECONDS = 5

REPORTS = {
    "lost": "no report (the process was killed)",
    "before_sweep": "the report arrives before the sweep sees the dead job",
    "after_sweep": "the report arrives after the sweep counted the job",
    "twice": "the report is delivered twice, the sweep sees the job too",
}


@pytest.mark.parametrize("report", list(REPORTS))
def test_jobs_killed_without_a_report_count_once_and_trip_the_breaker(report: str, figures: Figures) -> None:
    stack = TwinStack()
    rng = random.Random(f"unreported-{report}")
    names = [f"room-{n}" for n in range(ROOMS)]
    tasks = {}
    for n, name in enumerate(names):
        stack.join(f"PA_{n}", room=name)
        tasks[name] = stack.worker_becomes_ready(name)
    killed: dict[str, list[str]] = {name: [] for name in names}
    late: list[JobEnded] = []
    sweeps = 0

    for step in range(MINUTES * SWEEP_EVERY_SECONDS // TICK_SECONDS):
        for name in names:
            for dispatch in stack.dispatches(name):
                if not dispatch.has_running_job or rng.random() < 0.5:  # dies within seconds, at random
                    continue
                [job] = [j.job_id for j in dispatch.jobs]
                stack.job_started(name, tasks[name], job)  # its worker reported it started
                stack.livekit.end_jobs(name, dispatch.dispatch_id, "JS_FAILED")
                stack.heartbeat(tasks[name], {})  # and no longer lists it
                killed[name].append(job)
                ended = JobEnded(
                    task_arn=tasks[name],
                    room=name,
                    job_id=job,
                    outcome=JobOutcome.FAILURE,
                    duration_seconds=2.0,
                )
                if report in ("before_sweep", "twice"):
                    stack.controller.handle_timer(ended)
                if report in ("after_sweep", "twice"):
                    late.append(ended)
        stack.advance(TICK_SECONDS)
        for task in tasks.values():
            stack.heartbeat(task)
        if (step + 1) * TICK_SECONDS % SWEEP_EVERY_SECONDS == 0:
            stack.sweep()
            sweeps += 1
            for ended in late:
                stack.controller.handle_timer(ended)
            late.clear()
        holds(at_most_one_agent(twin_views(stack, names)), context=f"step {step}")

    limit = stack.policy.crash_loop_limit
    for name in names:
        room = stack.room(name)
        assert room.state is RoomState.FAILED, f"{name}: its breaker tripped"
        assert len(killed[name]) == limit, f"{name}: dispatched {len(killed[name])} times, not once a sweep"
        assert sorted(room.failed_jobs) == sorted(killed[name]), f"{name}: each dead job counted once"
    counted = {name: stack.room(name).failed_jobs for name in names}
    duplicates = sum(len(jobs) - len(set(jobs)) for jobs in counted.values())
    assert duplicates == 0
    assert stack.metrics.counts["CrashLoops"] == ROOMS
    figures.record(
        f"jobs killed without a report: {REPORTS[report]}",
        f"each dead job counted once; every room failed after {limit} dispatches, not one a sweep",
        storm=ROOMS,
        replayed=sum(len(jobs) for jobs in killed.values()) if report == "twice" else 0,
        faults=sum(len(jobs) for jobs in killed.values()),
        duplicates=duplicates,
        sweeps=sweeps,
    )
