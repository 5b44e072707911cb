"""One suite, two launch limiters: the in-memory twin and DynamoDB (moto) grant alike and store alike."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from control_plane.adapters.dynamodb_launch_limiter import (
    CONTENDED_RETRY_SECONDS,
    MAX_ATTEMPTS,
    DynamoDBLaunchLimiter,
)
from control_plane.adapters.dynamodb_store import _deserialize
from control_plane.adapters.memory.launch_limiter import InMemoryLaunchLimiter
from control_plane.launch_limit import LIMITER_PK, LaunchLimits
from control_plane.ports import LaunchGrant, LaunchLimiter
from local.fixtures import CallCounter, create_table

T0 = 1_800_000_000.0
TABLE = "rooms"
FULL = LaunchLimits(share=1.0)


@dataclass
class Limiter:
    """A limiter under test, a way to read the item it stores, and its table's client if any."""

    limiter: LaunchLimiter
    item: Callable[[], dict[str, Any] | None]
    client: Any = None

    def acquire(self, tasks: int, now: float) -> LaunchGrant:
        return self.limiter.acquire(tasks, now)


def dynamodb_item(client: Any) -> dict[str, Any] | None:
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": LIMITER_PK}}, ConsistentRead=True).get("Item")
    return _deserialize(item) if item else None


def build(kind: str, limits: LaunchLimits, client: Any = None) -> Limiter:
    if kind == "twin":
        twin = InMemoryLaunchLimiter(limits)
        return Limiter(twin, twin.stored_item)
    return Limiter(DynamoDBLaunchLimiter(client, TABLE, limits), lambda: dynamodb_item(client), client)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


@pytest.fixture(params=["twin", "dynamodb"])
def make(request: pytest.FixtureRequest) -> Callable[..., Limiter]:
    """``make(limits)``: a limiter of this run's kind over an empty table."""
    client = request.getfixturevalue("dynamodb") if request.param == "dynamodb" else None
    return lambda limits=FULL: build(str(request.param), limits, client)


def test_the_first_ask_takes_from_a_full_burst_and_stores_one_item(make: Any) -> None:
    limiter = make()
    assert limiter.item() is None, "nothing is stored before the first grant"

    assert limiter.acquire(3, T0) == LaunchGrant(tasks=3)
    assert limiter.item() == {
        "pk": LIMITER_PK,
        "task_tokens": 97.0,
        "call_tokens": 19.0,
        "as_of": T0,
        "version": 1,
    }


def test_the_default_share_starts_from_eighty_tasks_and_sixteen_calls(make: Any) -> None:
    limiter = make(LaunchLimits())
    assert limiter.acquire(10, T0) == LaunchGrant(tasks=10)
    item = limiter.item()
    assert (item["task_tokens"], item["call_tokens"]) == (70, 15)


def test_one_call_launches_at_most_ten_tasks(make: Any) -> None:
    limiter = make()
    assert limiter.acquire(25, T0) == LaunchGrant(tasks=10)
    assert limiter.item()["task_tokens"] == 90


def test_a_drained_bucket_refuses_with_retry_after_and_writes_nothing(make: Any) -> None:
    limiter = make()
    for _ in range(10):
        assert limiter.acquire(10, T0).tasks == 10
    stored = limiter.item()
    assert stored is not None and stored["version"] == 10

    refused = limiter.acquire(1, T0 + 0.01)
    assert refused.tasks == 0
    assert 0.04 < refused.retry_after <= 0.042
    assert limiter.item() == stored, "a refusal costs no write"

    assert limiter.acquire(5, T0 + 0.01 + refused.retry_after) == LaunchGrant(
        tasks=1, retry_after=pytest.approx(0.05, abs=0.002)
    )
    assert limiter.item()["version"] == 11


def test_the_call_bucket_limits_single_task_asks(make: Any) -> None:
    limiter = make()
    grants = [limiter.acquire(1, T0) for _ in range(21)]
    assert [g.tasks for g in grants] == [1] * 20 + [0]
    assert limiter.item()["call_tokens"] == 0
    assert limiter.item()["task_tokens"] == 80


def test_a_lagging_clock_mints_nothing_and_leaves_as_of_alone(make: Any) -> None:
    limiter = make()
    for _ in range(10):
        limiter.acquire(10, T0 + 10)
    refused = limiter.acquire(1, T0 + 3)
    assert refused.tasks == 0
    assert refused.retry_after == pytest.approx(0.05, abs=0.002)
    assert limiter.acquire(10, T0 + 10.5) == LaunchGrant(tasks=10)
    assert limiter.item()["as_of"] == T0 + 10.5


def test_the_item_is_permanent_and_outside_the_attention_index(make: Any) -> None:
    limiter = make()
    limiter.acquire(10, T0)
    assert set(limiter.item()) == {"pk", "task_tokens", "call_tokens", "as_of", "version"}
    if limiter.client is not None:
        assert limiter.client.scan(TableName=TABLE, IndexName="attention-index")["Items"] == []


def test_twin_and_dynamodb_grant_and_store_the_same_through_a_random_day(dynamodb: Any) -> None:
    twin = build("twin", LaunchLimits(), dynamodb)
    real = build("dynamodb", LaunchLimits(), dynamodb)
    rng = random.Random(7)
    now = T0
    for step in range(150):
        now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.3, 2.0, -0.5])  # bursts, gaps, a lagging clock
        ask = rng.randint(1, 12)
        assert twin.acquire(ask, now) == real.acquire(ask, now), f"step {step}"
        assert twin.item() == real.item(), f"step {step}"


# --- DynamoDB only: what the twin cannot do (lose a race) --------------------------------------


def rival_writes_before(client: Any, puts: int) -> None:
    """Another Lambda wins the race before each of our next ``puts`` writes: it takes a task."""
    rival = boto3.client("dynamodb", region_name="us-east-1")
    left = {"puts": puts}

    def interfere(**_: Any) -> None:
        if left["puts"] == 0:
            return
        left["puts"] -= 1
        rival.update_item(
            TableName=TABLE,
            Key={"pk": {"S": LIMITER_PK}},
            UpdateExpression="SET task_tokens = task_tokens - :one ADD version :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    client.meta.events.register("before-call.dynamodb.PutItem", interfere)


def test_a_lost_race_is_computed_again_on_the_winners_item(dynamodb: Any) -> None:
    limiter = DynamoDBLaunchLimiter(dynamodb, TABLE, FULL)
    limiter.acquire(10, T0)  # the item exists: 90 tasks, version 1
    calls = CallCounter(dynamodb)
    rival_writes_before(dynamodb, puts=2)

    assert limiter.acquire(10, T0) == LaunchGrant(tasks=10)
    assert calls.calls == {"GetItem": 1, "PutItem": 3}, "each lost write handed the winner's item back"
    assert dynamodb_item(dynamodb) == {
        "pk": LIMITER_PK,
        "task_tokens": 78.0,  # 90 - the rival's 2 - our 10
        "call_tokens": 18.0,  # the rival took no call token; ours took one, once
        "as_of": T0,
        "version": 4,
    }


def test_a_limiter_that_keeps_losing_answers_wait_instead_of_raising(dynamodb: Any) -> None:
    limiter = DynamoDBLaunchLimiter(dynamodb, TABLE, FULL)
    limiter.acquire(1, T0)
    rival_writes_before(dynamodb, puts=MAX_ATTEMPTS)

    assert limiter.acquire(10, T0) == LaunchGrant(tasks=0, retry_after=CONTENDED_RETRY_SECONDS)
    assert dynamodb_item(dynamodb)["version"] == 1 + MAX_ATTEMPTS, "only the rival wrote"


def test_racing_to_create_the_item_loses_to_the_first_writer(dynamodb: Any) -> None:
    limiter = DynamoDBLaunchLimiter(dynamodb, TABLE, FULL)
    first = DynamoDBLaunchLimiter(boto3.client("dynamodb", region_name="us-east-1"), TABLE, FULL)

    def first_writer_wins(**_: Any) -> None:
        if dynamodb_item(dynamodb) is None:
            first.acquire(4, T0)

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", first_writer_wins)
    assert limiter.acquire(10, T0) == LaunchGrant(tasks=10)
    item = dynamodb_item(dynamodb)
    assert item is not None and (item["task_tokens"], item["version"]) == (86, 2)


def test_other_dynamodb_errors_are_not_swallowed() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        with pytest.raises(ClientError, match="ResourceNotFound"):
            DynamoDBLaunchLimiter(client, "missing-table").acquire(1, T0)
