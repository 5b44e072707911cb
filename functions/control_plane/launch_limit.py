"""Fargate launch limits as two token buckets every Lambda shares: pure math, no I/O.

AWS throttles launches per account and Region with token buckets, and a launch storm must
queue behind our own model of them instead of failing at ECS:

- Fargate task launches: "the tasks and pods token bucket size for a Fargate customer account
  is 100 tokens, and the refill rate is 20 tokens per second" (on-demand and Spot alike),
  AWS Fargate throttling quotas,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html
- RunTask calls: on the same page, Fargate additionally throttles ``RunTask`` to "20 calls per
  second (burst and sustained)", each call launching up to 10 tasks. The ECS API's own bucket for
  ``RunTask`` (the "Cluster resource modify actions": 100 burst, 40 per second, shared with
  ``StopTask``), https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html,
  is looser, so the call bucket is 20 calls of burst refilled at 20 per second.

A grant takes one call token and up to ``ask`` whole task tokens. Single-task asks are therefore
bound by the call bucket (1,000 of them take (1000 - 20) / 20 = 49 s at the full quotas), asks
batched 10 per call by the task bucket ((1000 - 100) / 20 = 45 s).

We run at ``share`` (default 0.8) of those quotas, because:

- they belong to the whole account and Region: the console, CI, other stacks or a second stage
  launching tasks in the same account draw from the same buckets;
- our bucket is drawn down when a grant is made, ECS's when the RunTask call arrives: Lambda
  latency bunches calls that were granted apart, and ECS's refill may be stepwise;
- running below ECS's sustained rate lets its bucket refill behind ours, so those differences
  are absorbed instead of throttled, and ``StopTask`` keeps room in the shared ECS API bucket.

The price is a slower storm (1,000 batched launches in 57.5 s instead of 45 s); an account that
runs nothing else can set ``share=1.0``, one with raised quotas sets the bucket fields. A
throttle that still happens is handled by the runner (the outcome is unknown, the launch token
is kept), so the share keeps throttling rare; correctness never depends on it.

Time only moves forward here: a ``now`` older than the state's ``as_of`` (a Lambda whose clock
lags another's) refills nothing and leaves ``as_of`` where it was, so no clock mints tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from control_plane.ports import LaunchGrant

FARGATE_TASK_BURST = 100.0
FARGATE_TASK_RATE = 20.0
RUNTASK_CALL_BURST = 20.0
RUNTASK_CALL_RATE = 20.0
RUNTASK_MAX_TASKS = 10
DEFAULT_SHARE = 0.8

RETRY_MARGIN_SECONDS = 0.001
LIMITER_PK = "LIMITER#fargate"
# Float refills land a hair under a whole token (0.05 s x 20/s = 0.9999999999999998).
_EPSILON = 1e-9


@dataclass(frozen=True)
class LaunchLimits:
    """The documented quotas, of which we use ``share``; see the module docstring for why."""

    task_burst: float = FARGATE_TASK_BURST
    task_rate: float = FARGATE_TASK_RATE
    call_burst: float = RUNTASK_CALL_BURST
    call_rate: float = RUNTASK_CALL_RATE
    tasks_per_call: int = RUNTASK_MAX_TASKS
    share: float = DEFAULT_SHARE

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError("share is a fraction of the quotas: 0 < share <= 1")
        if self.task_rate <= 0 or self.call_rate <= 0:
            raise ValueError("refill rates must be positive")
        if self.task_capacity < 1 or self.call_capacity < 1:
            raise ValueError("share x burst must hold at least one token, or nothing is ever granted")
        if not 1 <= self.tasks_per_call <= RUNTASK_MAX_TASKS:
            raise ValueError(f"one RunTask call launches 1..{RUNTASK_MAX_TASKS} tasks")

    @property
    def task_capacity(self) -> float:
        return self.task_burst * self.share

    @property
    def task_refill(self) -> float:
        return self.task_rate * self.share

    @property
    def call_capacity(self) -> float:
        return self.call_burst * self.share

    @property
    def call_refill(self) -> float:
        return self.call_rate * self.share


@dataclass(frozen=True)
class LimiterState:
    """Tokens in each bucket as of ``as_of`` (epoch seconds); the one shared item holds this."""

    tasks: float
    calls: float
    as_of: float


def full_buckets(limits: LaunchLimits, now: float) -> LimiterState:
    """Where a limiter with no stored state starts: nothing launched lately, so the full burst."""
    return LimiterState(tasks=limits.task_capacity, calls=limits.call_capacity, as_of=now)


def refill(state: LimiterState, now: float, limits: LaunchLimits) -> LimiterState:
    """Add what the rates earned since ``as_of``, capped at the capacities (which also trims a
    state stored under larger limits); a ``now`` in the past earns nothing and moves nothing."""
    elapsed = max(0.0, now - state.as_of)
    return LimiterState(
        tasks=min(limits.task_capacity, max(0.0, state.tasks) + elapsed * limits.task_refill),
        calls=min(limits.call_capacity, max(0.0, state.calls) + elapsed * limits.call_refill),
        as_of=max(state.as_of, now),
    )


def seconds_until_grantable(state: LimiterState, limits: LaunchLimits) -> float:
    """How long until both a call token and a whole task token exist (0 if they do now)."""
    task_wait = max(0.0, 1.0 - state.tasks - _EPSILON) / limits.task_refill
    call_wait = max(0.0, 1.0 - state.calls - _EPSILON) / limits.call_refill
    return max(task_wait, call_wait)


def _retry_after(wait: float) -> float:
    """``wait`` rounded up to a whole millisecond, plus one: added to an epoch clock (a float whose
    resolution is about 0.2 microseconds), the exact wait can land a hair short of the token."""
    return 0.0 if wait <= 0 else math.ceil(wait * 1000) / 1000 + RETRY_MARGIN_SECONDS


def take_launch_tokens(
    state: LimiterState | None, ask: int, now: float, limits: LaunchLimits
) -> tuple[LimiterState, LaunchGrant]:
    """One RunTask call's worth: ``min(ask, tasks_per_call, whole task tokens)`` tasks and one
    call token, or nothing while either bucket is short of a token.

    ``retry_after`` says when the rest (or, for a grant of 0, anything) could be granted if no
    one else took tokens meanwhile, at most 2 ms late. A grant of 0 returns the state merely
    refilled, which equals the stored one for any later ``now``: callers need not write it back.
    """
    if ask < 1:
        raise ValueError("ask for at least one task")
    current = refill(state if state is not None else full_buckets(limits, now), now, limits)
    whole_tasks = math.floor(current.tasks + _EPSILON)
    if current.calls + _EPSILON < 1 or whole_tasks < 1:
        return current, LaunchGrant(
            tasks=0, retry_after=_retry_after(seconds_until_grantable(current, limits))
        )
    wanted = min(ask, limits.tasks_per_call)
    granted = min(wanted, whole_tasks)
    after = replace(
        current, tasks=_without_dust(current.tasks - granted), calls=_without_dust(current.calls - 1)
    )
    retry_after = 0.0 if granted == wanted else _retry_after(seconds_until_grantable(after, limits))
    return after, LaunchGrant(tasks=granted, retry_after=retry_after)


def _without_dust(tokens: float) -> float:
    """Never negative, and no float crumbs left over from a subtraction (DynamoDB refuses numbers
    under 1E-130, and a billionth of a token is none)."""
    return tokens if tokens >= _EPSILON else 0.0


def backlog_seconds(tasks: int, tasks_per_call: int, limits: LaunchLimits) -> float:
    """When the last of ``tasks`` launches, all waiting at once in calls of ``tasks_per_call``,
    is granted from full buckets: whichever bucket runs dry later decides."""
    calls = math.ceil(tasks / min(tasks_per_call, limits.tasks_per_call))
    return max(
        0.0,
        (tasks - limits.task_capacity) / limits.task_refill,
        (calls - limits.call_capacity) / limits.call_refill,
    )


def burst_needed(grants: Iterable[tuple[float, float]], rate: float) -> float:
    """The smallest bucket, refilled at ``rate`` and full at the start, that admits every
    ``(time, tokens)`` grant: how a storm's launches are checked against ECS's quotas.

    A bucket of capacity C admits them exactly when no stretch from grant i to grant j takes
    more than C + rate x (t_j - t_i); one pass keeps the best start seen so far.
    """
    needed = 0.0
    taken = 0.0
    best_start = -math.inf  # max over earlier i of rate x t_i - (tokens taken before i)
    for at, tokens in sorted(grants):
        best_start = max(best_start, rate * at - taken)
        taken += tokens
        needed = max(needed, taken - rate * at + best_start)
    return needed


# --- the stored item, the same in DynamoDB and in the twin -------------------------------------


def limiter_item(state: LimiterState, version: int) -> dict[str, Any]:
    """The one permanent item: no ``attention`` (the sweep never reads it), no ``expires_at``."""
    return {
        "pk": LIMITER_PK,
        "task_tokens": state.tasks,
        "call_tokens": state.calls,
        "as_of": state.as_of,
        "version": version,
    }


def limiter_state(item: dict[str, Any]) -> tuple[LimiterState, int]:
    """The state and version an item holds (numbers may come back as int or float)."""
    state = LimiterState(
        tasks=float(item["task_tokens"]), calls=float(item["call_tokens"]), as_of=float(item["as_of"])
    )
    return state, int(item["version"])
