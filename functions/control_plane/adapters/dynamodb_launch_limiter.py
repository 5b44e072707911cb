"""The launch limiter's buckets in one DynamoDB item, ``pk = LIMITER#fargate``, shared by every Lambda.

Optimistic concurrency: read the item (strongly consistent), compute the grant with the pure
:func:`take_launch_tokens`, write it back on condition that ``version`` is still the one read
(or that no item exists yet). A lost race hands back the current item (``ALL_OLD``) and the
grant is computed again on it. A grant of 0 writes nothing: refilling is a function of time, so
the stored state stays exact, and a storm's losers cost reads, not contended writes. After
:data:`MAX_ATTEMPTS` lost races the caller gets a grant of 0 and :data:`CONTENDED_RETRY_SECONDS`:
a limiter that raises would fail the launch it exists to delay.

The item carries neither ``attention`` (the sweep has nothing to do with it) nor ``expires_at``:
it is permanent and a few dozen bytes. Every launch writes it, but launches are at most 20 RunTask
calls a second, far below the 1,000 writes a second one DynamoDB partition takes. Errors other
than a lost race (throttling, an unreachable table) are raised, as the room store raises them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from control_plane.adapters.dynamodb_store import _deserialize, _is_condition_failure, _serialize
from control_plane.launch_limit import (
    LIMITER_PK,
    LaunchLimits,
    LimiterState,
    limiter_item,
    limiter_state,
    take_launch_tokens,
)
from control_plane.ports import LaunchGrant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

MAX_ATTEMPTS = 5
# One task token's refill at the full quota (1/20 s), doubled: long enough for the racers ahead
# to finish, short enough that the caller's next try still finds the tokens they left.
CONTENDED_RETRY_SECONDS = 0.1


class DynamoDBLaunchLimiter:
    def __init__(self, client: DynamoDBClient, table_name: str, limits: LaunchLimits | None = None) -> None:
        self._client = client
        self._table = table_name
        self._limits = limits if limits is not None else LaunchLimits()
        self._key = {"pk": {"S": LIMITER_PK}}

    def acquire(self, tasks: int, now: float) -> LaunchGrant:
        stored = self._read()
        for _ in range(MAX_ATTEMPTS):
            state, version = stored if stored is not None else (None, 0)
            after, grant = take_launch_tokens(state, tasks, now, self._limits)
            if grant.tasks == 0:
                return grant
            written, stored = self._write(after, version)
            if written:
                return grant
        return LaunchGrant(tasks=0, retry_after=CONTENDED_RETRY_SECONDS)

    def _read(self) -> tuple[LimiterState, int] | None:
        item = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item")
        return limiter_state(_deserialize(item)) if item else None

    def _write(self, state: LimiterState, version: int) -> tuple[bool, tuple[LimiterState, int] | None]:
        """Store ``state`` at ``version + 1`` if the item is still at ``version`` (0: absent).
        On a lost race: False and the item as the winner left it (re-read if not handed back)."""
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
                Item=_serialize(limiter_item(state, version + 1)),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            old: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            return False, limiter_state(_deserialize(old)) if old else self._read()
        return True, None
