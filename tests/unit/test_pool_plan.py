"""The warm pool's pure planner, by tables: what to launch, what to drain, how many slots to keep."""

from __future__ import annotations

from dataclasses import replace

import pytest

from control_plane.pool import (
    Demand,
    PoolPolicy,
    parse_schedule,
    plan_pool,
    poisson_quantile,
    slot_candidates,
    warm_slots,
)
from control_plane.worker_protocol import WorkerRecord, WorkerStatus

NOW = 1_800_000_000.0
POLICY = PoolPolicy(worker_stale_seconds=45, start_timeout_seconds=300)


def worker(
    arn: str,
    status: WorkerStatus = WorkerStatus.READY,
    *,
    capacity: int = 1,
    reserved: tuple[str, ...] = (),
    jobs: tuple[str, ...] = (),
    assigned: int = 0,
    heartbeat_ago: float = 5.0,
    draining: bool = False,
) -> WorkerRecord:
    return WorkerRecord(
        task_arn=arn,
        status=status,
        capacity=capacity,
        reserved={room: NOW for room in reserved},
        jobs={room: f"AJ_{room}" for room in jobs},
        assigned=assigned,
        heartbeat_at=NOW - heartbeat_ago,
        launched_at=NOW - 600,
        draining=draining,
    )


@pytest.mark.parametrize(
    "case, workers, policy, launch, drain, exhausted",
    [
        ("nothing wanted, nothing there", [], POLICY, 0, (), False),
        ("one warm slot wanted, none there", [], replace(POLICY, warm_tasks=1), 1, (), False),
        (
            "a starting task covers the wanted slot",
            [worker("t1", WorkerStatus.STARTING)],
            replace(POLICY, warm_tasks=1),
            0,
            (),
            False,
        ),
        ("a ready idle worker covers it", [worker("t1")], replace(POLICY, warm_tasks=1), 0, (), False),
        (
            "a busy worker is no free slot",
            [worker("t1", reserved=("r",), assigned=1)],
            replace(POLICY, warm_tasks=1),
            1,
            (),
            False,
        ),
        (
            "idle surplus drained, the wanted one kept",
            [worker("t1"), worker("t2")],
            replace(POLICY, warm_tasks=1),
            0,
            ("t1",),
            False,
        ),
        (
            "a ready worker is not drained for one still starting",
            [worker("t1"), worker("t2", WorkerStatus.STARTING)],
            replace(POLICY, warm_tasks=1),
            0,
            (),
            False,
        ),
        (
            "a spent idle worker is recycled whatever the need",
            [worker("t1", assigned=1)],
            replace(POLICY, warm_tasks=1),
            1,
            ("t1",),
            False,
        ),
        (
            "a worker with a job is never drained",
            [worker("t1", jobs=("r",)), worker("t2", reserved=("s",))],
            POLICY,
            0,
            (),
            False,
        ),
        (
            "a stale worker is no capacity",
            [worker("t1", heartbeat_ago=60)],
            replace(POLICY, warm_tasks=1),
            1,
            (),
            False,
        ),
        (
            "launches stop at MAX_TASKS",
            [worker("t1", reserved=("r",), assigned=1)],
            replace(POLICY, warm_tasks=2, max_tasks=2),
            1,
            (),
            True,
        ),
        (
            "two slots a task: one launch for two wanted",
            [],
            replace(POLICY, warm_tasks=1, slots_per_task=2, jobs_per_task=2),
            1,
            (),
            False,
        ),
    ],
)
def test_plan_pool(
    case: str,
    workers: list[WorkerRecord],
    policy: PoolPolicy,
    launch: int,
    drain: tuple[str, ...],
    exhausted: bool,
) -> None:
    plan = plan_pool(workers, Demand(), NOW, policy)

    assert (plan.launch, plan.drain, plan.exhausted) == (launch, drain, exhausted), case


def test_a_task_held_for_its_waiting_room_is_neither_counted_nor_drained() -> None:
    held = worker("t1")

    plan = plan_pool([held], Demand(), NOW, replace(POLICY, warm_tasks=1), held=frozenset({"t1"}))

    assert plan.free_slots == 0 and plan.launch == 1 and plan.drain == ()
    assert plan.live_tasks == 1, "it still counts toward MAX_TASKS"


def test_the_adaptive_pool_keeps_a_task_of_margin_before_draining() -> None:
    quiet = Demand()
    adaptive = replace(POLICY, adaptive=True)

    assert plan_pool([worker("t1")], quiet, NOW, adaptive).drain == ()
    assert plan_pool([worker("t1"), worker("t2")], quiet, NOW, adaptive).drain == ("t1",)


@pytest.mark.parametrize(
    "mean, share, k",
    [(0.0, 0.05, 0), (1.0, 0.05, 3), (1.0, 0.01, 4), (10.0, 0.05, 15), (0.1, 0.05, 1)],
)
def test_poisson_quantile_is_the_smallest_k_with_the_tail_within_the_share(
    mean: float, share: float, k: int
) -> None:
    assert poisson_quantile(mean, share) == k


def test_adaptive_warm_slots_are_the_quantile_of_arrivals_in_one_cold_start_plus_one() -> None:
    minute = int(NOW // 60)
    # 15 arrivals a minute for 15 minutes: 0.25 a second; a 60 s cold start expects 15.
    demand = Demand({minute - m: 15 for m in range(15)}, cold_start_seconds=60.0)
    policy = replace(POLICY, adaptive=True, target_wait_share=0.05)

    assert warm_slots(policy, demand, NOW) == poisson_quantile(15.0, 0.05) + 1
    assert warm_slots(policy, Demand(), NOW) == 0, "no arrivals, nothing kept"
    assert warm_slots(replace(policy, warm_tasks=30), demand, NOW) == 30, "never below WARM_TASKS"


@pytest.mark.parametrize(
    "text, minute, floor",
    [
        ("08:00-18:00=4", 7 * 60 + 59, 0),
        ("08:00-18:00=4", 8 * 60, 4),
        ("08:00-18:00=4", 18 * 60, 0),
        ("22:00-06:00=2", 23 * 60, 2),
        ("22:00-06:00=2", 5 * 60, 2),
        ("22:00-06:00=2", 12 * 60, 0),
        ("08:00-18:00=4, 12:00-13:00=6", 12 * 60 + 30, 6),
    ],
)
def test_schedule_floors_apply_in_their_utc_window(text: str, minute: int, floor: int) -> None:
    day = NOW - NOW % 86400
    policy = replace(POLICY, schedule=parse_schedule(text))

    assert warm_slots(policy, Demand(), day + minute * 60) == floor


@pytest.mark.parametrize("text", ["8-18=4", "08:00-18:00", "25:00-26:00=1", "08:61-09:00=1", "x"])
def test_a_schedule_that_is_not_hh_mm_ranges_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="schedule entry"):
        parse_schedule(text)


def test_slot_candidates_prefer_the_rooms_own_task_then_the_fullest() -> None:
    half = worker("t1", capacity=2, reserved=("r",), assigned=1)
    empty = worker("t2", capacity=2)
    own = worker("t3", capacity=2)
    gone = worker("t4", draining=True)
    policy = replace(POLICY, slots_per_task=2, jobs_per_task=5)

    assert [w.task_arn for w in slot_candidates([empty, half, own, gone], NOW, policy)] == ["t1", "t2", "t3"]
    preferred = slot_candidates([empty, half, own], NOW, policy, prefer="t3")
    assert [w.task_arn for w in preferred] == ["t3", "t1", "t2"]
