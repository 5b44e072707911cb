"""The live-task count (``control_plane.task_count``) in one DynamoDB item, ``pk = LIMITER#tasks``.

Optimistic concurrency, as the launch limiter's item: read it (strongly consistent), apply the
pure rule, write it back on condition that ``version`` is still the one read (or that no item
exists yet); a lost race is computed again on the winner's item (``ALL_OLD``). A change that
changes nothing writes nothing. After :data:`MAX_ATTEMPTS` lost races ``reserve`` grants
nothing (the caller waits and asks again, as over the cap) and the other steps raise
:class:`~control_plane.ports.VersionConflict` (the sweep heals what they could not write).
The map holds one entry per live task (an ARN and a time, ~100 bytes): ``MAX_TASKS`` in the
thousands stays far below DynamoDB's 400 KB item limit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from control_plane.adapters.dynamodb_store import _deserialize, _is_condition_failure, _serialize
from control_plane.ports import VersionConflict
from control_plane.task_count import (
    TASK_COUNT_PK,
    confirmed,
    count_item,
    count_state,
    counted,
    healed,
    released,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

MAX_ATTEMPTS = 8


class DynamoDBTaskCount:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._key = {"pk": {"S": TASK_COUNT_PK}}

    def reserve(self, keys: Sequence[str], max_tasks: int, now: float) -> list[str]:
        granted: list[str] = []

        def take(live: dict[str, float]) -> dict[str, float]:
            after, granted[:] = counted(live, keys, max_tasks, now)
            return after

        try:
            self._change(take)
        except VersionConflict:
            return []
        return granted

    def confirm(self, keys: Sequence[str], task_arns: Sequence[str], now: float) -> None:
        self._change(lambda live: confirmed(live, keys, task_arns, now))

    def release(self, keys: Collection[str]) -> None:
        self._change(lambda live: released(live, keys))

    def heal(self, listed: Collection[str], now: float) -> None:
        self._change(lambda live: healed(live, listed, now))

    def live(self) -> dict[str, float]:
        stored = self._read()
        return stored[0] if stored is not None else {}

    def _change(self, change: Callable[[dict[str, float]], dict[str, float]]) -> None:
        stored = self._read()
        for _ in range(MAX_ATTEMPTS):
            live, version = stored if stored is not None else ({}, 0)
            after = change(live)
            if after == live:
                return
            written, stored = self._write(after, version)
            if written:
                return
        raise VersionConflict("the live-task count is too contended to update")

    def _read(self) -> tuple[dict[str, float], int] | None:
        item = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item")
        return count_state(_deserialize(item)) if item else None

    def _write(
        self, live: dict[str, float], version: int
    ) -> tuple[bool, tuple[dict[str, float], int] | None]:
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if version == 0
            else {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": {"N": str(version)}},
            }
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_serialize(count_item(live, version + 1)),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            old: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            return False, count_state(_deserialize(old)) if old else self._read()
        return True, None
