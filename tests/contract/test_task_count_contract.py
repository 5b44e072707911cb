"""One suite, two live-task counts (``MAX_TASKS`` as a hard cap): the in-memory twin and
DynamoDB (moto) admit alike and store alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from control_plane.adapters.dynamodb_store import _deserialize
from control_plane.adapters.dynamodb_task_count import MAX_ATTEMPTS, DynamoDBTaskCount
from control_plane.adapters.memory.task_count import InMemoryTaskCount
from control_plane.ports import VersionConflict
from control_plane.task_count import TASK_COUNT_PK, UNLISTED_GRACE_SECONDS
from local.fixtures import create_table

T0 = 1_800_000_000.0
TABLE = "rooms"
Count = InMemoryTaskCount | DynamoDBTaskCount


def stored(count: Count) -> dict[str, Any] | None:
    if isinstance(count, InMemoryTaskCount):
        return count.stored_item()
    item = count._client.get_item(TableName=TABLE, Key={"pk": {"S": TASK_COUNT_PK}}, ConsistentRead=True)
    return _deserialize(item["Item"]) if "Item" in item else None


@pytest.fixture(params=["twin", "dynamodb"])
def count(request: pytest.FixtureRequest) -> Iterator[Count]:
    if request.param == "twin":
        yield InMemoryTaskCount()
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield DynamoDBTaskCount(client, TABLE)


def test_launches_are_admitted_up_to_the_cap_and_a_retry_is_not_counted_twice(count: Count) -> None:
    assert count.reserve(["room-a-1"], 3, T0) == ["room-a-1"]
    assert count.reserve(["pool-x#0", "pool-x#1", "pool-x#2"], 3, T0) == ["pool-x#0", "pool-x#1"]
    assert count.reserve(["room-b-1"], 3, T0) == [], "at the cap"
    assert count.reserve(["room-a-1"], 3, T0 + 1) == ["room-a-1"], "the same launch retried"

    assert count.live() == {"room-a-1": T0, "pool-x#0": T0, "pool-x#1": T0}
    assert stored(count) == {"pk": TASK_COUNT_PK, "live": count.live(), "version": 2}
    assert "attention" not in stored(count) and "expires_at" not in stored(count)


def test_a_confirmed_launch_is_counted_by_arn_and_its_stop_frees_the_place_once(count: Count) -> None:
    count.reserve(["room-a-1"], 3, T0)
    count.reserve(["pool-x#0", "pool-x#1"], 3, T0)
    count.release(["pool-x#1"])  # the limiter granted one task only
    count.confirm(["room-a-1"], ["arn:a"], T0 + 1)
    count.confirm(["pool-x#0"], ["arn:p"], T0 + 1)
    assert count.live() == {"arn:a": T0 + 1, "arn:p": T0 + 1}

    count.release(["arn:a"])
    count.release(["arn:a"])  # the STOPPED event delivered twice
    assert count.live() == {"arn:p": T0 + 1}
    assert count.reserve(["room-b-1"], 3, T0 + 2) == ["room-b-1"]
    assert stored(count)["version"] == 7, "each change one write, none for a change of nothing"


def test_the_heal_counts_what_ecs_lists_and_forgets_what_it_no_longer_does(count: Count) -> None:
    count.reserve(["lost-launch"], 10, T0)  # a Lambda died between counting and RunTask
    count.reserve(["in-flight"], 10, T0 + UNLISTED_GRACE_SECONDS)
    count.confirm(["in-flight"], ["arn:new"], T0 + UNLISTED_GRACE_SECONDS)
    count.reserve(["gone"], 10, T0)
    count.confirm(["gone"], ["arn:gone"], T0)  # its STOPPED event was lost

    count.heal({"arn:old", "arn:listed"}, T0 + UNLISTED_GRACE_SECONDS + 1)

    assert count.live() == {
        "arn:new": T0 + UNLISTED_GRACE_SECONDS,
        "arn:old": T0 + UNLISTED_GRACE_SECONDS + 1,
        "arn:listed": T0 + UNLISTED_GRACE_SECONDS + 1,
    }, "a task ListTasks does not show yet is kept; one launched by an earlier deploy is counted"


def test_a_lost_race_is_computed_again_on_the_winners_item() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        first, second = DynamoDBTaskCount(client, TABLE), DynamoDBTaskCount(client, TABLE)
        first.reserve(["a"], 2, T0)
        read = second._read
        raced = []

        def read_then_another_lambda_wins() -> Any:
            state = read()
            if not raced:
                raced.append(True)
                first.reserve(["b"], 2, T0)
            return state

        second._read = read_then_another_lambda_wins  # type: ignore[method-assign]
        assert second.reserve(["c"], 2, T0) == [], "recomputed on the winner's item: at the cap"
        assert set(second.live()) == {"a", "b"}


def test_a_count_that_keeps_losing_admits_nothing_and_other_steps_raise() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        count = DynamoDBTaskCount(client, TABLE)
        count.reserve(["a"], 5, T0)
        read = count._read
        count._write = lambda live, version: (False, read())  # type: ignore[method-assign,assignment]

        assert count.reserve(["b"], 5, T0) == []
        with pytest.raises(VersionConflict):
            count.release(["a"])
        assert MAX_ATTEMPTS >= 3
