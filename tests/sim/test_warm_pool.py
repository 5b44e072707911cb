"""The warm-pool rows (issue 10): what each does on hand-written traces, and the goals at a scale a
test can run. The reference-trace figures are ``make simulate``'s; these keep the mechanisms
behind them honest.

Cold starts are a fixed 45 s and webhooks arrive 0.1 s after the event; the first sweep runs at
30 s, so a warm row's first pool task is launched then and ready at 75 s.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

import pytest

from sim import goals, report, traces
from sim.model import EPOCH, LIVEKIT_JOB_ASSIGNMENT_S
from sim.policies import OUR_POLICIES, POLICIES, WARM_ROWS
from sim.policies.default import DefaultPolicy
from sim.report import PolicyResult
from sim.run import simulate
from sim.traces import ColdStart, Faults, Outage, Session, Trace, Traffic
from sim.world import World

COLD = ColdStart(median_s=45.0, p99_s=45.0)
T = TypeVar("T")


def one_room(join: float, leave: float, room: str = "room-a") -> Session:
    return traces.session(room, [("PA_1", join, leave)], identity="alice")


def trace_of(*sessions: Session, outages: tuple[Outage, ...] = ()) -> Trace:
    return traces.hand_trace(sessions, outages=outages, cold_start=COLD)


def lives(world: World) -> list[tuple[str | None, float, float | None, float | None]]:
    return sorted(
        (
            t.room,
            round(t.launched_at, 2),
            t.ready_at and round(t.ready_at, 2),
            t.ended_at and round(t.ended_at, 2),
        )
        for t in world.ledger.tasks.values()
    )


def jobs(world: World) -> list[tuple[str, float, float | None]]:
    return sorted((j.room, round(j.start, 2), j.end and round(j.end, 2)) for j in world.ledger.jobs)


# --- what the rows do ----------------------------------------------------------------------------


def test_warm_1_has_a_worker_ready_and_the_first_human_gets_it_in_the_same_webhook() -> None:
    world, result = simulate(trace_of(one_room(200.0, 500.0)), "warm_1")
    end = round(world.ledger.end, 2)
    # The pool's task from the first sweep (30 s) takes the room at its join webhook (200.1); its
    # replacement is launched then. The worker served its one room (JOBS_PER_TASK=1) and exits
    # when the grace period ends and its job with it (560.1).
    assert lives(world) == [(None, 30.0, 75.0, 560.1), (None, 200.1, 245.1, end)]
    assert jobs(world) == [("room-a", round(200.1 + LIVEKIT_JOB_ASSIGNMENT_S, 2), 560.1)]
    f = result.figures
    assert f["dispatch_wait_p50_s"] == 0.0 and f["agent_wait_p50_s"] == LIVEKIT_JOB_ASSIGNMENT_S
    assert f["sessions_below_capacity"] == 1 and f["dispatch_within_1s_below_capacity"] == 1.0
    assert not any(t.crashed for t in world.ledger.tasks.values()) and not f["errors"]


def test_the_default_row_has_no_warm_worker_and_the_first_human_waits_for_a_cold_start() -> None:
    world, result = simulate(trace_of(one_room(200.0, 500.0)), "default")
    assert lives(world) == [("room-a", 200.1, 245.1, 560.1)]
    assert result.figures["dispatch_wait_p50_s"] == 45.0
    assert result.figures["sessions_below_capacity"] == 0


def test_warm_2_keeps_two_free_slots_and_idles_them_between_rooms() -> None:
    world, result = simulate(trace_of(one_room(200.0, 500.0)), "warm_2")
    assert [life[:3] for life in lives(world)] == [
        (None, 30.0, 75.0),
        (None, 30.0, 75.0),
        (None, 200.1, 245.1),
    ]
    # Ready time not serving a room with humans is idle: the warm pool's own cost.
    assert result.figures["idle_agent_seconds"] > 2 * (world.ledger.end - 75.0) - 300.0


class _LastFreeWorker(random.Random):
    """LiveKit's draw, made to pick the worker the control plane did not reserve."""

    def choice(self, seq: Sequence[T]) -> T:
        return seq[-1]


def test_livekit_may_run_the_job_on_another_free_worker_and_the_slot_follows_it() -> None:
    policy = POLICIES["warm_2"]()
    world = World(trace_of(one_room(200.0, 500.0)), policy)
    world._assignments = _LastFreeWorker()
    seen: dict[str, object] = {}

    def look() -> None:
        assert isinstance(policy, DefaultPolicy)
        room = policy.plane.store.get("room-a")
        (job,) = world.ledger.jobs
        seen["job_on"] = job.task_arn
        seen["recorded_on"] = room.agent.task_arn if room and room.agent else None
        seen["reserved_on"] = [
            w.task_arn for w in policy.plane.store.live_workers() if "room-a" in w.reserved
        ]

    world.at(EPOCH + 300.0, look)
    world.run()
    first_pool_task = min(t.arn for t in world.ledger.tasks.values())
    assert seen["job_on"] != first_pool_task, "LiveKit chose the other warm worker"
    assert seen["recorded_on"] == seen["job_on"] and seen["reserved_on"] == [seen["job_on"]]


def test_livekit_hands_a_job_to_any_free_worker_that_would_take_it() -> None:
    fungible = World(trace_of(one_room(10.0, 20.0)), POLICIES["warm_1"]())
    fungible.start_fleet(3)
    picked = {fungible.worker_for("room-a").arn for _ in range(60)}
    assert len(picked) == 3, "a draw over every free worker, not always the first"

    # A seed policy's task launched for room-b declines room-a's job; one launched for no room
    # takes it.
    seeded = World(trace_of(one_room(10.0, 20.0)), POLICIES["ttl_sweep"]())
    own = seeded.task_launched("arn:task-b", "room-b", "token-b")
    own.ready = True
    seeded._free[own.arn] = own
    assert seeded.worker_for("room-a") is None and seeded.worker_for("room-b") is own
    seeded.start_fleet(1)
    assert seeded.would_take("room-a")


def test_a_pooled_worker_drains_so_one_rooms_end_never_cuts_another_rooms_call() -> None:
    short, long = one_room(200.0, 300.0, "room-a"), one_room(205.0, 900.0, "room-b")
    world, result = simulate(trace_of(short, long), "pooled_4")
    by_room = {job.room: job for job in world.ledger.jobs}
    assert by_room["room-a"].task_arn == by_room["room-b"].task_arn, "both rooms on one worker"
    task = world.ledger.tasks[by_room["room-a"].task_arn]
    b_end = by_room["room-b"].end
    assert by_room["room-a"].end is not None and b_end is not None and by_room["room-a"].end < 400.0
    # Room b keeps its agent until its own grace ends; the worker outlives it.
    assert b_end > 900.0 + 60.0 and (task.ended_at is None or task.ended_at >= b_end)
    assert result.figures["calls_cut"] == 0 and result.figures["rooms_without_agent"] == 0


def test_a_task_stopped_under_a_live_call_is_counted_as_a_cut_call() -> None:
    """The check above can fail: a StopTask while a room on the task has humans is a cut."""
    world = World(trace_of(one_room(200.0, 900.0, "room-b")), POLICIES["pooled_4"]())

    def stop_its_worker() -> None:
        (job,) = world.ledger.jobs
        world.ecs.stop(job.task_arn, "test: stopped under a call")

    world.at(EPOCH + 600.0, stop_its_worker)
    world.run()
    assert world.ledger.calls_cut == 1


# --- goals at a scale a test runs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_day() -> dict[str, PolicyResult]:
    """Our rows over a small faulty day (400 rooms: duplicates, reorders, losses, crashes,
    LiveKit and Fargate capacity outages)."""
    day = traces.generate(3, rooms=400)
    return {name: simulate(day, name)[1] for name in OUR_POLICIES}


@pytest.fixture(scope="module")
def small_storm() -> dict[str, dict[str, object]]:
    """Our rows over a 200-room launch storm (all within 10 s)."""
    storm = traces.storm(4, rooms=200)
    return {name: report.storm_figures(simulate(storm, name)[1]) for name in OUR_POLICIES}


def test_our_rows_never_run_two_agents_nor_strand_a_room_on_a_faulty_day(
    small_day: dict[str, PolicyResult],
) -> None:
    for name, result in small_day.items():
        f = result.figures
        assert f["duplicate_agent_seconds"] == 0, name
        assert f["rooms_without_agent"] == 0, name
        assert f["unexpected_errors"] == {}, name
        assert f["calls_cut"] == 0, name


def test_pooled_rows_launch_a_fraction_of_the_single_room_rows_tasks(
    small_day: dict[str, PolicyResult],
) -> None:
    single = small_day["adaptive"].figures["task_starts"]
    assert small_day["pooled_4"].figures["task_starts"] < single / 2
    assert small_day["pooled_8"].figures["task_starts"] < small_day["pooled_4"].figures["task_starts"]


@pytest.mark.parametrize("name", WARM_ROWS)
def test_below_pool_capacity_the_dispatch_exists_within_1_s_of_the_first_webhook(
    small_day: dict[str, PolicyResult], name: str
) -> None:
    f = small_day[name].figures
    assert f["sessions_below_capacity"] >= 100
    assert f["dispatch_within_1s_below_capacity"] >= goals.DISPATCH_GOAL_SHARE


def test_a_launch_storm_queues_behind_the_limiter_and_every_room_is_dispatched_within_its_bound(
    small_storm: dict[str, dict[str, object]],
) -> None:
    for name, figures in small_storm.items():
        assert figures["failed_launches"] == 0, name
        assert figures["rooms_never_served"] == 0, name
        assert figures["dispatch_wait_max_s"] <= figures["dispatch_bound_s"], name


def test_the_goal_lines_cover_every_row_and_the_storm(
    small_day: dict[str, PolicyResult], small_storm: dict[str, dict[str, object]]
) -> None:
    lines = goals.goals(small_day, 400, small_storm)
    text = "\n".join(goal for goal, _, _ in lines)
    for name in WARM_ROWS:
        assert f"first human's webhook for >= 99% of rooms, {name}" in text
    assert "adaptive: wait p99" in text and "launch storm: 0 failed launches" in text


# --- faults and sizing the core once got wrong --------------------------------------------------


def test_a_refused_pool_launch_does_not_fail_the_sweep() -> None:
    outage = Outage("ecs_capacity", 100.0, 400.0)
    _, result = simulate(trace_of(one_room(200.0, 500.0), outages=(outage,)), "warm_1")
    assert result.figures["sweeps_failed"] == 0


def test_the_adaptive_pool_leaves_few_first_joins_without_a_slot() -> None:
    """A 3-hour trace, its first 15 minutes with no arrival history to size from: under the
    setting's default 5 % (the row targets 1 %; the reference day's share is in the report)."""
    busy = traces.generate(11, 1500, Traffic(duration_s=3 * 3600.0), Faults.none())
    f = simulate(busy, "adaptive")[1].figures
    without = 1 - f["sessions_below_capacity"] / f["sessions_with_join_webhook"]
    assert without <= 0.05
