"""The launch limiter under a storm: 8 Lambdas, 1,000 room launches, one item on a moto server.

Real HTTP and real threads race for the ``LIMITER#fargate`` item; moto answers one request at a
time, as DynamoDB applies each conditional write atomically (``atomic_moto_server.py``). Time is
virtual so that 45 s of launches take a few real seconds: the clock moves one step per round,
and in each round every thread asks, batching up to 10 waiting rooms per call (the issue's
RunTask batching), until the limiter refuses it. Rooms arrive 100 a second for 10 s.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from control_plane.adapters.dynamodb_launch_limiter import DynamoDBLaunchLimiter
from control_plane.adapters.dynamodb_store import _deserialize
from control_plane.launch_limit import (
    LIMITER_PK,
    LaunchLimits,
    LimiterState,
    backlog_seconds,
    burst_needed,
    full_buckets,
    limiter_state,
    refill,
)
from local.fixtures import create_table
from tests.reliability.report import Figures

pytestmark = pytest.mark.moto_server

T0 = 1_800_000_000.0
LAMBDAS = 8
ROOMS = 1000
ARRIVALS_PER_SECOND = 100
TICK = 1.0
PER_CALL = 10
LIMITS = LaunchLimits(share=1.0)  # the documented quotas, so the bound is the 45 s
MAX_ROUNDS = 120
WAIT_SECONDS = 60  # real seconds a thread waits for the others before the test gives up


def client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def table(moto_server_url: str) -> Iterator[str]:
    """A table of its own on the shared server, so nothing else's items meet the limiter's."""
    name = f"limiter-{uuid.uuid4().hex[:8]}"
    create_table(client(moto_server_url), name)
    yield name
    client(moto_server_url).delete_table(TableName=name)


class Storm:
    """The shared world of one storm: waiting rooms, launched rooms, the virtual clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: deque[int] = deque()
        self.launched: list[int] = []
        self.grants: list[tuple[float, int]] = []  # (virtual time, tasks), one per RunTask call
        self.refusals = 0
        self.now = T0 - TICK
        self.rounds = 0
        self.over = False
        self.barrier = threading.Barrier(LAMBDAS, action=self.next_round)

    def next_round(self) -> None:
        """Runs once between rounds, while every thread waits: advance the clock, let rooms in."""
        self.now += TICK
        arrived = len(self.launched) + len(self.waiting)
        self.waiting.extend(range(arrived, min(ROOMS, arrived + int(ARRIVALS_PER_SECOND * TICK))))
        self.rounds += 1
        self.over = len(self.launched) == ROOMS or self.rounds > MAX_ROUNDS

    def take(self) -> list[int]:
        with self.lock:
            return [self.waiting.popleft() for _ in range(min(PER_CALL, len(self.waiting)))]

    def record(self, rooms: list[int], granted: int, now: float) -> None:
        with self.lock:
            self.launched.extend(rooms[:granted])
            self.waiting.extendleft(reversed(rooms[granted:]))  # back to the head, in order
            if granted:
                self.grants.append((now, granted))
            else:
                self.refusals += 1

    def lambda_(self, limiter: DynamoDBLaunchLimiter) -> None:
        try:
            while True:
                self.barrier.wait(timeout=WAIT_SECONDS)
                if self.over:
                    return
                while rooms := self.take():
                    grant = limiter.acquire(len(rooms), self.now)
                    self.record(rooms, grant.tasks, self.now)
                    if grant.tasks == 0:
                        assert grant.retry_after > 0
                        break  # wait for the clock to move
        except BaseException:
            self.barrier.abort()
            raise


def expected_state(grants: list[tuple[float, int]]) -> LimiterState:
    """The item a single careful writer would have left: every grant applied once, in time order."""
    state = full_buckets(LIMITS, T0)
    for at, tasks in sorted(grants):
        state = refill(state, at, LIMITS)
        state = LimiterState(tasks=state.tasks - tasks, calls=state.calls - 1, as_of=state.as_of)
    return state


def test_a_thousand_launches_from_eight_lambdas_queue_within_the_bucket(
    moto_server_url: str, table: str, figures: Figures
) -> None:
    storm = Storm()
    limiters = [DynamoDBLaunchLimiter(client(moto_server_url), table, LIMITS) for _ in range(LAMBDAS)]
    with ThreadPoolExecutor(LAMBDAS) as pool:
        for done in [pool.submit(storm.lambda_, limiter) for limiter in limiters]:
            done.result()

    counts = Counter(storm.launched)
    assert len(counts) == ROOMS, "every room launched"
    assert set(counts.values()) == {1}, "no room launched twice"
    assert sum(tasks for _, tasks in storm.grants) == ROOMS

    assert burst_needed(storm.grants, LIMITS.task_refill) <= LIMITS.task_capacity + 1e-6
    assert (
        burst_needed([(at, 1) for at, _ in storm.grants], LIMITS.call_refill) <= LIMITS.call_capacity + 1e-6
    )
    finished = max(at for at, _ in storm.grants) - T0
    assert finished <= backlog_seconds(ROOMS, PER_CALL, LIMITS) + TICK

    raw = client(moto_server_url).get_item(
        TableName=table, Key={"pk": {"S": LIMITER_PK}}, ConsistentRead=True
    )
    stored, version = limiter_state(_deserialize(raw["Item"]))
    assert version == len(storm.grants), "one write per grant: no two Lambdas spent the same tokens"
    expected = expected_state(storm.grants)
    assert stored.tasks == pytest.approx(expected.tasks, abs=1e-6)
    assert stored.calls == pytest.approx(expected.calls, abs=1e-6)
    assert stored.as_of == expected.as_of

    figures.record(
        "launch storm: 1,000 rooms in 10 s, 8 Lambdas, one limiter item",
        "all launched once, never over the buckets",
        storm=LAMBDAS,
        replayed=0,
        faults=0,
        duplicates=sum(count - 1 for count in counts.values()),
        rooms=ROOMS,
        runtask_calls=len(storm.grants),
        refusals=storm.refusals,
        last_launch_s=round(finished, 2),
        bound_s=backlog_seconds(ROOMS, PER_CALL, LIMITS),
    )
