"""The launch limiter's pure token-bucket math, in virtual time."""

from __future__ import annotations

import heapq
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.launch_limit import (
    DEFAULT_SHARE,
    LIMITER_PK,
    LaunchLimits,
    LimiterState,
    backlog_seconds,
    burst_needed,
    full_buckets,
    limiter_item,
    limiter_state,
    refill,
    take_launch_tokens,
)
from control_plane.ports import LaunchGrant

T0 = 1_800_000_000.0
FULL = LaunchLimits(share=1.0)  # the documented quotas, all ours
SLACK = 1e-6
LATE = 0.002  # retry_after is rounded up to whole milliseconds, plus one


def drained(at: float = T0) -> LimiterState:
    return LimiterState(tasks=0.0, calls=0.0, as_of=at)


def storm(
    arrivals: list[float], per_call: int, limits: LaunchLimits
) -> tuple[list[tuple[float, int]], dict[int, float]]:
    """Rooms waiting at ``arrivals`` launch in calls of up to ``per_call``, oldest first; a caller
    told to wait comes back after ``retry_after``. Returns the grants (time, tasks) and when each
    room's launch was granted."""
    state: LimiterState | None = None
    waiting = [(at, room) for room, at in enumerate(arrivals)]
    heapq.heapify(waiting)
    now = arrivals[0]
    grants: list[tuple[float, int]] = []
    granted_at: dict[int, float] = {}
    while waiting:
        now = max(now, waiting[0][0])
        due = []
        while waiting and len(due) < per_call and waiting[0][0] <= now:
            due.append(heapq.heappop(waiting))
        state, grant = take_launch_tokens(state, len(due), now, limits)
        for _, room in due[: grant.tasks]:
            granted_at[room] = now
        for entry in due[grant.tasks :]:
            heapq.heappush(waiting, entry)
        if grant.tasks:
            grants.append((now, grant.tasks))
        else:
            assert grant.retry_after > 0
            now += grant.retry_after
    return grants, granted_at


def tasks_in_any_second(grants: list[tuple[float, int]]) -> int:
    times = [at for at, _ in grants]
    prefix = [0, *itertools.accumulate(n for _, n in grants)]
    most = 0
    for i, start in enumerate(times):
        end = next((j for j in range(i, len(times)) if times[j] >= start + 1.0), len(times))
        most = max(most, prefix[end] - prefix[i])
    return most


# --- buckets ------------------------------------------------------------------------------------


def test_the_documented_quotas_are_the_defaults_at_a_share_of_them() -> None:
    limits = LaunchLimits()
    assert (limits.task_burst, limits.task_rate) == (100, 20)
    assert (limits.call_burst, limits.call_rate, limits.tasks_per_call) == (20, 20, 10)
    assert limits.share == DEFAULT_SHARE == 0.8
    assert (limits.task_capacity, limits.task_refill) == (80, 16)
    assert (limits.call_capacity, limits.call_refill) == (16, 16)


@pytest.mark.parametrize(
    "overrides",
    [
        {"share": 0.0},
        {"share": 1.5},
        {"task_rate": 0.0},
        {"call_rate": -1.0},
        {"task_burst": 1.0, "share": 0.5},
        {"tasks_per_call": 11},
        {"tasks_per_call": 0},
    ],
)
def test_limits_that_could_never_grant_or_break_runtask_are_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LaunchLimits(**overrides)  # type: ignore[arg-type]


def test_the_burst_is_granted_at_once_then_twenty_a_second() -> None:
    state: LimiterState | None = None
    for _ in range(10):
        state, grant = take_launch_tokens(state, 10, T0, FULL)
        assert grant == LaunchGrant(tasks=10)
    assert state == LimiterState(tasks=0.0, calls=10.0, as_of=T0)

    state, grant = take_launch_tokens(state, 1, T0, FULL)
    assert grant == LaunchGrant(tasks=0, retry_after=pytest.approx(0.05, abs=LATE))

    granted = 0
    for tick in range(1, 201):  # one ask every 1/20 s for 10 s
        state, grant = take_launch_tokens(state, 10, T0 + tick / 20, FULL)
        granted += grant.tasks
    assert granted == 200


def test_a_grant_batches_up_to_ten_tasks_in_one_call() -> None:
    state, grant = take_launch_tokens(None, 25, T0, FULL)
    assert grant == LaunchGrant(tasks=10, retry_after=0.0)
    assert state == LimiterState(tasks=90.0, calls=19.0, as_of=T0)


def test_a_partial_grant_says_when_the_next_task_token_comes() -> None:
    state = LimiterState(tasks=3.5, calls=5.0, as_of=T0)
    after, grant = take_launch_tokens(state, 10, T0, FULL)
    assert grant == LaunchGrant(tasks=3, retry_after=pytest.approx(0.5 / 20, abs=LATE))
    assert after == LimiterState(tasks=0.5, calls=4.0, as_of=T0)


def test_no_call_token_means_no_grant_even_with_task_tokens() -> None:
    state = LimiterState(tasks=50.0, calls=0.25, as_of=T0)
    after, grant = take_launch_tokens(state, 1, T0, FULL)
    assert grant == LaunchGrant(tasks=0, retry_after=pytest.approx(0.75 / 20, abs=LATE))
    assert after == state, "a refused ask takes nothing"


def test_retry_after_is_the_first_moment_a_grant_is_possible_give_or_two_milliseconds() -> None:
    state = LimiterState(tasks=0.2, calls=0.9, as_of=T0)
    _, refused = take_launch_tokens(state, 1, T0, FULL)
    assert 0.8 / 20 < refused.retry_after <= 0.8 / 20 + LATE
    _, early = take_launch_tokens(state, 1, T0 + 0.8 / 20 - 1e-3, FULL)
    _, on_time = take_launch_tokens(state, 1, T0 + refused.retry_after, FULL)
    assert early.tasks == 0
    assert on_time.tasks == 1


def test_an_idle_limiter_never_holds_more_than_the_burst() -> None:
    assert refill(drained(), T0 + 3600, FULL) == LimiterState(tasks=100, calls=20, as_of=T0 + 3600)
    stored_under_bigger_limits = LimiterState(tasks=500.0, calls=60.0, as_of=T0)
    assert refill(stored_under_bigger_limits, T0, LaunchLimits()) == LimiterState(80, 16, T0)


def test_a_corrupt_negative_state_counts_as_empty() -> None:
    assert refill(LimiterState(tasks=-7.0, calls=-1.0, as_of=T0), T0, FULL) == drained()


def test_a_clock_going_backwards_mints_nothing() -> None:
    state = drained(at=T0 + 10)
    behind, grant = take_launch_tokens(state, 1, T0 + 2, FULL)
    assert grant.tasks == 0
    assert behind == state, "as_of stays where the fastest clock left it"
    assert grant.retry_after == pytest.approx(0.05, abs=LATE), "counted from as_of, not the slow clock"

    after, grant = take_launch_tokens(state, 10, T0 + 10.5, FULL)
    assert grant.tasks == 10, "half a second after as_of: 10 tokens, not 8.5 seconds' worth"
    assert after.tasks == 0


def test_a_grant_with_a_lagging_clock_spends_tokens_at_as_of() -> None:
    state = LimiterState(tasks=30.0, calls=5.0, as_of=T0 + 10)
    after, grant = take_launch_tokens(state, 10, T0 + 9, FULL)
    assert grant.tasks == 10
    assert after == LimiterState(tasks=20.0, calls=4.0, as_of=T0 + 10)


def test_asking_for_nothing_is_a_bug() -> None:
    with pytest.raises(ValueError):
        take_launch_tokens(None, 0, T0, FULL)


def test_float_crumbs_from_refills_still_make_whole_tokens() -> None:
    limits = LaunchLimits(task_burst=10, share=1.0)
    state, _ = take_launch_tokens(None, 10, 0.0, limits)
    for step in range(1, 101):
        state, grant = take_launch_tokens(state, 1, step * 0.05, limits)
        assert grant.tasks == 1, f"0.05 s x 20/s is a whole token (step {step})"
    assert 0.0 <= state.tasks < 1e-6


def test_a_caller_on_an_epoch_clock_that_waits_retry_after_is_granted_every_time() -> None:
    """At 1.8e9 s a float resolves 0.24 microseconds: the exact wait would land a hair short."""
    state, _ = take_launch_tokens(None, 10, T0, LaunchLimits(task_burst=10, share=1.0))
    now = T0
    for _ in range(200):
        state, refused = take_launch_tokens(state, 1, now, FULL)
        assert refused.tasks == 0
        now += refused.retry_after
        state, grant = take_launch_tokens(state, 1, now, FULL)
        assert grant.tasks == 1


# --- storms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_call", "limits", "bound"),
    [
        (1, FULL, 49.0),  # single-task asks: the call bucket binds, (1000 - 20) / 20
        (10, FULL, 45.0),  # batched: the task bucket binds, (1000 - 100) / 20
        (10, LaunchLimits(), 57.5),  # batched at the default share: (1000 - 80) / 16
        (1, LaunchLimits(), 61.5),
    ],
)
def test_a_storm_of_a_thousand_launches_in_ten_seconds_queues_within_the_bound(
    per_call: int, limits: LaunchLimits, bound: float
) -> None:
    arrivals = [T0 + i / 100 for i in range(1000)]
    grants, granted_at = storm(arrivals, per_call, limits)

    assert backlog_seconds(1000, per_call, limits) == pytest.approx(bound)
    assert len(granted_at) == 1000, "every room launches"
    assert sum(n for _, n in grants) == 1000, "none twice"
    assert max(granted_at.values()) - T0 <= bound + 0.05
    assert burst_needed(grants, limits.task_refill) <= limits.task_capacity + SLACK
    assert burst_needed([(at, 1) for at, _ in grants], limits.call_refill) <= limits.call_capacity + SLACK
    assert tasks_in_any_second(grants) <= limits.task_capacity + limits.task_refill
    assert all(n <= per_call for _, n in grants)


def test_a_launch_waits_no_longer_than_the_backlog_ahead_of_it() -> None:
    _, granted_at = storm([T0] * 1000, 10, FULL)
    for room in (0, 99, 100, 500, 999):
        assert granted_at[room] - T0 <= backlog_seconds(room + 1, 10, FULL) + 0.05


def test_burst_needed_is_the_tightest_bucket() -> None:
    assert burst_needed([], 20) == 0
    assert burst_needed([(0.0, 100), (1.0, 20), (2.0, 20)], 20) == 100
    assert burst_needed([(0.0, 100), (0.5, 20)], 20) == 110
    assert burst_needed([(5.0, 3), (0.0, 1)], 1) == 3, "order of the input does not matter"


# --- the stored item ----------------------------------------------------------------------------


def test_the_stored_item_is_the_state_and_a_version_and_nothing_else() -> None:
    state = LimiterState(tasks=12.5, calls=3.0, as_of=T0 + 0.25)
    item = limiter_item(state, 7)
    assert item == {
        "pk": LIMITER_PK,
        "task_tokens": 12.5,
        "call_tokens": 3.0,
        "as_of": T0 + 0.25,
        "version": 7,
    }
    assert limiter_state({**item, "call_tokens": 3, "version": 7}) == (state, 7), "DynamoDB hands back ints"


# --- properties ---------------------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),  # clock moves, backwards too
        st.integers(min_value=1, max_value=15),  # asks beyond 10 are capped
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, share=st.sampled_from([1.0, DEFAULT_SHARE, 0.3]), start_full=st.booleans())
def test_no_sequence_of_asks_and_clocks_breaks_the_buckets(
    steps: list[tuple[float, int]], share: float, start_full: bool
) -> None:
    limits = LaunchLimits(share=share)
    state = full_buckets(limits, T0) if start_full else drained()
    # An empty bucket at T0 is a full one whose every token was taken at T0.
    tasks_taken: list[tuple[float, float]] = [] if start_full else [(T0, limits.task_capacity)]
    calls_taken: list[tuple[float, float]] = [] if start_full else [(T0, limits.call_capacity)]
    now = T0
    for moved, ask in steps:
        now += moved
        before = state
        state, grant = take_launch_tokens(state, ask, now, limits)

        assert 0 <= state.tasks <= limits.task_capacity
        assert 0 <= state.calls <= limits.call_capacity
        assert state.as_of == max(before.as_of, now), "time only moves forward"
        assert 0 <= grant.tasks <= min(ask, limits.tasks_per_call)
        if grant.tasks == 0:
            assert grant.retry_after > 0
            assert state == refill(before, now, limits), "a refused ask takes nothing"
        elif grant.tasks == min(ask, limits.tasks_per_call):
            assert grant.retry_after == 0
        if grant.tasks:
            tasks_taken.append((state.as_of, grant.tasks))
            calls_taken.append((state.as_of, 1))

    assert burst_needed(tasks_taken, limits.task_refill) <= limits.task_capacity + SLACK
    assert burst_needed(calls_taken, limits.call_refill) <= limits.call_capacity + SLACK


@settings(max_examples=100, deadline=None)
@given(
    tasks=st.floats(min_value=0, max_value=100, allow_nan=False),
    calls=st.floats(min_value=0, max_value=20, allow_nan=False),
    ask=st.integers(min_value=1, max_value=10),
)
def test_waiting_retry_after_always_gets_a_grant(tasks: float, calls: float, ask: int) -> None:
    state = LimiterState(tasks=tasks, calls=calls, as_of=T0)
    _, grant = take_launch_tokens(state, ask, T0, FULL)
    if grant.tasks == 0:
        _, again = take_launch_tokens(state, ask, T0 + grant.retry_after, FULL)
        assert again.tasks >= 1
        assert math.isfinite(grant.retry_after)
