"""DynamoDB adapter for rooms, webhook ids and worker records (one table, TTL ``expires_at``).

Items: ``ROOM#<name>`` (a :class:`Room`, plus its derived ``state``), ``EVENT#<id>`` (webhook
dedupe) and ``TASK#<arn>`` (a :class:`WorkerRecord`). Rooms and live workers carry an
``attention`` attribute, the key of a sparse index, so the sweeper reads only what is active:
``room#<shard>`` and ``worker#<shard>`` (:mod:`control_plane.shards`), queried shard by shard.
Items written before the index was sharded carry ``room`` or ``worker``; the reads still query
those (``LEGACY_ATTENTION``) until every such item has been rewritten (docs/architecture.md).
Every room write is conditional on ``version``. TTL deletes lazily, so expired dedupe items
are treated as absent in code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import ValidationError

from control_plane.adapters.dynamodb_slot_writes import SLOT_ATTRIBUTES, WorkerUpdate, file, pin, unfile
from control_plane.aws_names import room_key
from control_plane.pool import ARRIVAL_RING, Demand, smoothed_cold_start
from control_plane.ports import ObservedTaskState, VersionConflict
from control_plane.room import (
    DEFAULT_RETENTION_SECONDS,
    DEPARTED_PRUNE_THRESHOLD,
    ChangeKind,
    ParticipantChange,
    Room,
    observe_participant,
    prune_departed,
    with_retention,
)
from control_plane.shards import attention_value, attention_values, in_shards, shard_of
from control_plane.slot_index import FREE, SLOT_INDEX, SLOT_SHARDS, STARTING, pinned, slot_key
from control_plane.worker_protocol import (
    ROOM_PK_PREFIX,
    WORKER_ATTENTION,
    WorkerRecord,
    WorkerStatus,
    worker_pk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ATTENTION_INDEX = "attention-index"
ROOM_ATTENTION = "room"
# The unsharded values of the release before the shards: read as well, for one release.
LEGACY_ATTENTION = {ROOM_ATTENTION: ROOM_ATTENTION, WORKER_ATTENTION: WORKER_ATTENTION}
WAITING_ATTENTION = "waiting"
EVENT_PK_PREFIX = "EVENT#"
WAITING_PK_PREFIX = "WAIT#"
SWEEP_CURSOR_PK = "SWEEP#cursor"
POOL_PK = "POOL#demand"
# Fields only the control plane writes on a worker item; worker-side writes create them empty.
CONTROL_PLANE_WORKER_FIELDS = frozenset(
    {"draining", "reserved", "assigned", "launched_at", "ready_at", *SLOT_ATTRIBUTES}
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _to_dynamo(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(item) for item in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    return value


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(_to_dynamo(value)) for key, value in item.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _from_dynamo(_deserializer.deserialize(value)) for key, value in item.items()}


def room_item(room: Room) -> dict[str, Any]:
    """The full item for a room; ``attention`` (the sparse index key) exactly while it needs it."""
    item = room.model_dump(mode="python", exclude_none=True)
    item["pk"] = room_key(room.name)
    item["state"] = room.state.value
    if room.needs_attention:
        item["attention"] = attention_value(ROOM_ATTENTION, room.name)
    return item


def room_from_item(item: dict[str, Any]) -> Room:
    fields = _deserialize(item)
    return Room.model_validate({**fields, "in_attention_index": "attention" in fields})


def _cursor_pk(group: int) -> str:
    """Group 0 keeps the key of the sweep before the groups, so its cursor survives a deploy."""
    return SWEEP_CURSOR_PK if group == 0 else f"{SWEEP_CURSOR_PK}#{group}"


def _attention_key(item: dict[str, Any]) -> str:
    """What an item's shard is the hash of: a room's name, a worker's task ARN."""
    for field in ("name", "task_arn"):
        value = item.get(field, {}).get("S")
        if value is not None:
            return str(value)
    return str(item["pk"]["S"])


def _worker_from_item(item: dict[str, Any]) -> WorkerRecord | None:
    """A worker item as a record; one a task filled with garbage reads as absent."""
    try:
        return WorkerRecord.model_validate(_deserialize(item))
    except ValidationError:
        return None


def _waiting_key(room: str) -> dict[str, Any]:
    """``WAIT#`` plus the room's key without ``ROOM#`` (hashed like it for very long names)."""
    return {"pk": {"S": WAITING_PK_PREFIX + room_key(room)[len(ROOM_PK_PREFIX) :]}}


def _is_condition_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


class DynamoDBStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        *,
        task_role_id: str = "",
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention = retention_seconds
        self._task_role_id = task_role_id

    def _worker_key(self, task_arn: str) -> dict[str, Any]:
        return {"pk": {"S": worker_pk(task_arn, self._task_role_id)}}

    def _stored(self, room: Room, version: int) -> Room:
        """The room as a full write stores it: version, retention and index attribute set."""
        kept = with_retention(room, self._retention)
        return kept.model_copy(update={"version": version, "in_attention_index": kept.needs_attention})

    # --- RoomStore ------------------------------------------------------------------------

    def get(self, name: str) -> Room | None:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": room_key(name)}}, ConsistentRead=True
        )
        item = response.get("Item")
        return room_from_item(item) if item else None

    def create(self, room: Room) -> Room:
        stored = self._stored(room, 1)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_serialize(room_item(stored)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise VersionConflict(f"room {room.name} exists already") from error
            raise
        return stored

    def save(self, room: Room, expected_version: int) -> Room:
        stored = self._stored(room, expected_version + 1)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_serialize(room_item(stored)),
                ConditionExpression="version = :expected",
                ExpressionAttributeValues={":expected": {"N": str(expected_version)}},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise VersionConflict(f"room {room.name} changed since version {expected_version}") from error
            raise
        return stored

    def observe_participant(self, change: ParticipantChange) -> Room:
        """One ``UpdateItem`` and no read when the room session exists and the sid is new.

        Otherwise the failed condition hands back the item (``ALL_OLD``), the pure
        :func:`observe_participant` decides, and a versioned put records any change. An event
        of an earlier session changes nothing and returns the room as stored. A join puts the
        room into the attention index on the fast path too, so a Lambda dying right after it
        still leaves the waiting human where the sweeper looks. The stored ``state`` is
        refreshed by the next full write (the reconcile that follows).
        """
        for _ in range(8):
            try:
                response = self._client.update_item(**self._fast_observe_args(change))
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
                old_item: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                current = room_from_item(old_item) if old_item else None
                updated = observe_participant(current, change)
                if updated is None or updated == current:
                    assert current is not None  # only a recorded room can make an event stale
                    return current
                try:
                    if current is None:
                        return self.create(updated)
                    return self.save(updated, current.version)
                except VersionConflict:
                    continue
            room = room_from_item(response["Attributes"])
            if len(room.departed) > DEPARTED_PRUNE_THRESHOLD:
                room = self._prune_departed(room, change)
            return room
        raise VersionConflict(f"room {change.room} is too contended to record {change.kind} of {change.sid}")

    def _fast_observe_args(self, change: ParticipantChange) -> dict[str, Any]:
        names = {"#p": change.sid, "#room_sid": "sid"}
        values: dict[str, Any] = {
            ":room_sid": {"S": change.room_sid},
            ":one": {"N": "1"},
            ":now": {"N": repr(change.at)},
        }
        condition = "#room_sid = :room_sid AND attribute_not_exists(departed.#p)"
        if change.kind is ChangeKind.JOINED:
            # A join into a failed room also clears the failure: the pure path does that.
            condition += " AND attribute_not_exists(failed_at)"
            values[":human"] = _serializer.serialize(
                _to_dynamo({"identity": change.identity, "joined_at": change.at})
            )
            values[":attention"] = {"S": attention_value(ROOM_ATTENTION, change.room)}
            names["#attention"] = "attention"
            names["#expires_at"] = "expires_at"
            expression = (
                "SET humans.#p = :human, updated_at = :now, #attention = :attention "
                "REMOVE #expires_at ADD version :one"
            )
            condition += " AND attribute_not_exists(humans.#p)"
        else:
            expression = "SET departed.#p = :now, updated_at = :now REMOVE humans.#p ADD version :one"
        return {
            "TableName": self._table,
            "Key": {"pk": {"S": room_key(change.room)}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _prune_departed(self, room: Room, change: ParticipantChange) -> Room:
        """Keep the departed-sids map small in long rooms; a lost race just prunes later."""
        pruned = room.model_copy(update={"departed": prune_departed(room.departed, change.at)})
        try:
            return self.save(pruned, room.version)
        except VersionConflict:
            return room

    def claim_event(self, event_id: str, now: int, expires_at: int) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": EVENT_PK_PREFIX + event_id}, "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def release_event(self, event_id: str) -> None:
        self._client.delete_item(TableName=self._table, Key={"pk": {"S": EVENT_PK_PREFIX + event_id}})

    def rooms_needing_attention(self, shards: Collection[int] | None = None) -> Iterable[Room]:
        for item in self._query_attention(ROOM_ATTENTION, shards):
            # A task may write any attribute into its own worker item, ``attention`` included.
            if item["pk"]["S"].startswith(ROOM_PK_PREFIX):
                yield room_from_item(item)

    def get_sweep_cursor(self, group: int = 0) -> str | None:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": _cursor_pk(group)}}, ConsistentRead=True
        )
        cursor = response.get("Item", {}).get("cursor", {}).get("S")
        return str(cursor) if cursor is not None else None

    def put_sweep_cursor(self, room: str | None, group: int = 0) -> None:
        if room is None:
            self._client.delete_item(TableName=self._table, Key={"pk": {"S": _cursor_pk(group)}})
            return
        self._client.put_item(
            TableName=self._table, Item={"pk": {"S": _cursor_pk(group)}, "cursor": {"S": room}}
        )

    def _query_attention(self, kind: str, shards: Collection[int] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of ``kind`` in ``shards`` (None: all), one query per shard, then the
        unsharded legacy value's items that hash into ``shards``."""
        for value in attention_values(kind, shards):
            yield from self._query_partition(value)
        for item in self._query_partition(LEGACY_ATTENTION[kind]):
            if in_shards(_attention_key(item), shards):
                yield item

    def _query_partition(self, value: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=ATTENTION_INDEX,
            KeyConditionExpression="attention = :a",
            ExpressionAttributeValues={":a": {"S": value}},
        ):
            yield from page.get("Items", [])

    # --- WorkerRegistry -------------------------------------------------------------------

    def get_worker(self, task_arn: str) -> WorkerRecord | None:
        """The task's record; one whose ``task_arn`` names another task is not believed."""
        response = self._client.get_item(
            TableName=self._table, Key=self._worker_key(task_arn), ConsistentRead=True
        )
        item = response.get("Item")
        record = _worker_from_item(item) if item else None
        return record if record is not None and record.task_arn == task_arn else None

    def put_worker(self, record: WorkerRecord) -> None:
        """Write every field but ``draining``: only :meth:`mark_draining` sets that. A stopped
        record gets ``expires_at``, so finished tasks leave the table."""
        if record.status is WorkerStatus.STOPPED and record.expires_at is None:
            record = record.model_copy(update={"expires_at": int(record.heartbeat_at) + self._retention})
        fields = record.model_dump(mode="python", exclude=set(CONTROL_PLANE_WORKER_FIELDS), exclude_none=True)
        names = {f"#{key}": key for key in fields}
        values = {f":{key}": _serializer.serialize(_to_dynamo(value)) for key, value in fields.items()}
        names |= {"#reserved": "reserved", "#assigned": "assigned"}
        values |= {":no_rooms": {"M": {}}, ":zero": {"N": "0"}}
        sets = [
            *(f"#{key} = :{key}" for key in fields),
            "#reserved = if_not_exists(#reserved, :no_rooms)",
            "#assigned = if_not_exists(#assigned, :zero)",
        ]
        expression = "SET " + ", ".join(sets)
        if record.status is WorkerStatus.STOPPED:
            expression += " REMOVE attention, slot_key, slot_free"
        else:
            names["#attention"] = "attention"
            values[":attention"] = {"S": attention_value(WORKER_ATTENTION, record.task_arn)}
            expression = "SET " + ", ".join([*sets, "#attention = :attention"])
        self._client.update_item(
            TableName=self._table,
            Key=self._worker_key(record.task_arn),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def mark_draining(self, task_arn: str) -> None:
        update = WorkerUpdate(
            sets=["#draining = :true"],
            conditions=["attribute_exists(pk)"],
            names={"#draining": "draining"},
            values={":true": {"BOOL": True}},
        )
        unfile(update)
        self._update_worker(task_arn, update)

    def reserve_slot(self, worker: WorkerRecord, room: str, now: float, jobs_per_task: int) -> bool:
        """Conditional on ``worker`` as read (a listing may be a moment old); if the item moved
        on, judged once more on the item read afresh."""
        base: WorkerRecord | None = worker
        for _ in range(2):
            if base is None:
                return False
            room_left = base.capacity - len(set(base.jobs) - set(base.reserved))
            if (
                base.status is not WorkerStatus.READY
                or base.draining
                or base.assigned >= jobs_per_task
                or len(base.reserved) >= room_left
                or room in base.reserved
            ):
                return False
            reserved = {**base.reserved, room: now}
            after = base.model_copy(update={"reserved": reserved, "assigned": base.assigned + 1})
            update = WorkerUpdate(
                sets=["#reserved.#room = :now"],
                adds=["#assigned :one"],
                conditions=[
                    "#status = :ready",
                    "attribute_not_exists(#reserved.#room)",
                    "attribute_not_exists(#assigned) OR #assigned < :jobs_per_task",
                ],
                names={"#room": room},
                values={
                    ":now": {"N": repr(now)},
                    ":one": {"N": "1"},
                    ":ready": {"S": WorkerStatus.READY.value},
                    ":jobs_per_task": {"N": str(jobs_per_task)},
                },
            )
            pin(update, base)
            file(update, after, jobs_per_task)
            if self._update_worker(base.task_arn, update):
                return True
            fresh = self.get_worker(base.task_arn)
            if fresh is not None and pinned(fresh) == pinned(base):
                return False  # the item is as judged: refused on its merits, not for a change
            base = fresh
        return False

    def adopt_slot(self, task_arn: str, room: str, now: float, jobs_per_task: int) -> None:
        def adopt(current: WorkerRecord) -> WorkerUpdate | None:
            if room in current.reserved:
                return None
            after = current.model_copy(
                update={"reserved": {**current.reserved, room: now}, "assigned": current.assigned + 1}
            )
            update = WorkerUpdate(
                sets=["#reserved.#room = :now"],
                adds=["#assigned :one"],
                conditions=["attribute_exists(#reserved) AND attribute_not_exists(#reserved.#room)"],
                names={"#room": room},
                values={":now": {"N": repr(now)}, ":one": {"N": "1"}},
            )
            pin(update, current)
            file(update, after, jobs_per_task)
            return update

        self._rewrite_worker(task_arn, adopt)

    def release_slot(
        self, task_arn: str, room: str, jobs_per_task: int, unassign: bool = False
    ) -> WorkerRecord | None:
        def release(current: WorkerRecord) -> WorkerUpdate | None:
            if room not in current.reserved:
                return None
            after = current.model_copy(
                update={
                    "reserved": {name: at for name, at in current.reserved.items() if name != room},
                    "assigned": current.assigned - 1 if unassign else current.assigned,
                }
            )
            # ADD 0 when the room still counts toward JOBS_PER_TASK: one expression either way.
            update = WorkerUpdate(
                removes=["#reserved.#room"],
                adds=["#assigned :delta"],
                conditions=["attribute_exists(#reserved.#room)"],
                names={"#room": room},
                values={":delta": {"N": "-1" if unassign else "0"}},
            )
            pin(update, current)
            file(update, after, jobs_per_task)
            return update

        after, current = self._rewrite_worker(task_arn, release)
        return after if after is not None else current

    def drain_if_idle(self, task_arn: str) -> bool:
        update = WorkerUpdate(
            sets=["#draining = :true"],
            conditions=[
                "attribute_exists(pk)",
                "attribute_not_exists(#reserved) OR size(#reserved) = :zero",
                "attribute_not_exists(#jobs) OR size(#jobs) = :zero",
            ],
            names={"#draining": "draining", "#jobs": "jobs", "#reserved": "reserved"},
            values={":true": {"BOOL": True}, ":zero": {"N": "0"}},
        )
        unfile(update)
        return self._update_worker(task_arn, update)

    def reap_slot(self, task_arn: str, room: str, reserved_at: float, jobs_per_task: int) -> bool:
        def reap(current: WorkerRecord) -> WorkerUpdate | None:
            if current.reserved.get(room) != reserved_at or room in current.jobs:
                return None
            after = current.model_copy(
                update={
                    "reserved": {name: at for name, at in current.reserved.items() if name != room},
                    "assigned": current.assigned - 1,
                }
            )
            update = WorkerUpdate(
                removes=["#reserved.#room"],
                adds=["#assigned :minus_one"],
                conditions=["#reserved.#room = :at AND NOT attribute_exists(#jobs.#room)"],
                names={"#room": room, "#jobs": "jobs"},
                values={":at": {"N": repr(reserved_at)}, ":minus_one": {"N": "-1"}},
            )
            pin(update, current)
            file(update, after, jobs_per_task)
            return update

        return self._rewrite_worker(task_arn, reap)[0] is not None

    def drain_after(self, task_arn: str, room: str) -> WorkerRecord | None:
        update = WorkerUpdate(
            sets=["#draining = :true"],
            conditions=[
                "attribute_exists(pk)",
                "attribute_not_exists(#reserved) OR size(#reserved) = :zero",
                "attribute_not_exists(#jobs) OR size(#jobs) = :zero"
                " OR (size(#jobs) = :one AND attribute_exists(#jobs.#room))",
            ],
            names={"#draining": "draining", "#reserved": "reserved", "#jobs": "jobs", "#room": room},
            values={":true": {"BOOL": True}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
        unfile(update)
        return self._update_worker_returning(task_arn, update)

    def refile_slot(self, worker: WorkerRecord, jobs_per_task: int) -> bool:
        """Re-file a worker whose index attributes drifted from its record (a worker's own write
        changed its status or jobs): conditional on the record as read, its jobs included."""
        update = WorkerUpdate(
            conditions=["#status <> :stopped", "size(#jobs) = :jobs"],
            names={"#jobs": "jobs"},
            values={":stopped": {"S": WorkerStatus.STOPPED.value}, ":jobs": {"N": str(len(worker.jobs))}},
        )
        pin(update, worker)
        file(update, worker, jobs_per_task)
        return self._update_worker(worker.task_arn, update)

    def open_workers(self, shard: int, limit: int) -> list[WorkerRecord]:
        """Up to ``limit`` workers of one shard of the index with a free slot, fullest first."""
        return self._query_slots(slot_key(FREE, shard), limit)

    def pool_workers(self) -> list[WorkerRecord]:
        """Every worker in the index: the free slots and the tasks on the way (the pool's size)."""
        return [
            worker
            for kind in (FREE, STARTING)
            for shard in range(SLOT_SHARDS)
            for worker in self._query_slots(slot_key(kind, shard), None)
        ]

    def _query_slots(self, key: str, limit: int | None) -> list[WorkerRecord]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": SLOT_INDEX,
            "KeyConditionExpression": "slot_key = :key",
            "ExpressionAttributeValues": {":key": {"S": key}},
        }
        if limit is not None:
            arguments["Limit"] = limit
            items = self._client.query(**arguments).get("Items", [])
        else:
            pages = self._client.get_paginator("query").paginate(**arguments)
            items = [item for page in pages for item in page.get("Items", [])]
        return [worker for worker in map(self._own_worker, items) if worker is not None]

    def _own_worker(self, item: dict[str, Any]) -> WorkerRecord | None:
        """A worker item as a record if its key is the one its ``task_arn`` maps to."""
        record = _worker_from_item(item)
        if record is None or item["pk"]["S"] != worker_pk(record.task_arn, self._task_role_id):
            return None
        return record

    def _rewrite_worker(
        self, task_arn: str, change: Callable[[WorkerRecord], WorkerUpdate | None]
    ) -> tuple[WorkerRecord | None, WorkerRecord | None]:
        """Read the item, build the write from it (conditional on it), retry if it moved on: the
        record after the write (None if ``change`` declined, or the item kept moving) and the
        record as last read."""
        current = None
        for _ in range(3):
            current = self.get_worker(task_arn)
            update = change(current) if current is not None else None
            if update is None:
                return None, current
            after = self._update_worker_returning(task_arn, update)
            if after is not None:
                return after, current
        return None, current

    def _update_worker(self, task_arn: str, update: WorkerUpdate) -> bool:
        try:
            self._client.update_item(
                TableName=self._table, Key=self._worker_key(task_arn), **update.arguments()
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def _update_worker_returning(self, task_arn: str, update: WorkerUpdate) -> WorkerRecord | None:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._worker_key(task_arn),
                ReturnValues="ALL_NEW",
                **update.arguments(),
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        record = _worker_from_item(response["Attributes"])
        return record if record is not None and record.task_arn == task_arn else None

    def _conditional_worker_update(
        self,
        task_arn: str,
        expression: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        room: str | None = None,
    ) -> bool:
        names = {**names, "#reserved": "reserved", "#assigned": "assigned"}
        if room is not None:
            names["#room"] = room
        tokens = set(re.findall(r"[#:]\w+", expression + " " + condition))
        used = {key: value for key, value in names.items() if key in tokens}
        values = {key: value for key, value in values.items() if key in tokens}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._worker_key(task_arn),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # --- the pool: rooms waiting for a slot, demand -------------------------------------

    def put_waiting(self, room: str, since: float) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_waiting_key(room),
                    "room": {"S": room},
                    "since": {"N": repr(since)},
                    "attention": {"S": WAITING_ATTENTION},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def remove_waiting(self, room: str) -> None:
        self._client.delete_item(TableName=self._table, Key=_waiting_key(room))

    def is_waiting(self, room: str) -> bool:
        response = self._client.get_item(TableName=self._table, Key=_waiting_key(room), ConsistentRead=True)
        return "Item" in response

    def waiting_rooms(self) -> list[tuple[str, float]]:
        found = [
            (item["room"]["S"], float(item["since"]["N"]))
            for item in self._query_partition(WAITING_ATTENTION)
            if item["pk"]["S"].startswith(WAITING_PK_PREFIX) and "room" in item and "since" in item
        ]
        return sorted(found, key=lambda entry: (entry[1], entry[0]))

    def pool_demand(self) -> Demand:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": POOL_PK}}, ConsistentRead=True
        )
        item = _deserialize(response.get("Item", {}))
        ring = {
            slot: (int(item[f"m{slot}"]), int(item[f"c{slot}"]))
            for slot in range(ARRIVAL_RING)
            if f"m{slot}" in item and f"c{slot}" in item
        }
        cold = item.get("cold_start_seconds")
        return Demand.stored(ring, float(cold) if cold is not None else None)

    def count_arrival(self, now: float) -> None:
        """One ``ADD`` while the ring slot holds this minute; else restart the slot at 1."""
        minute = int(now // 60)
        slot = minute % ARRIVAL_RING
        names = {"#m": f"m{slot}", "#c": f"c{slot}"}
        values = {":minute": {"N": str(minute)}, ":one": {"N": "1"}}
        for _ in range(3):
            for expression, condition in (
                ("ADD #c :one", "#m = :minute"),
                ("SET #m = :minute, #c = :one", "attribute_not_exists(#m) OR #m <> :minute"),
            ):
                try:
                    self._client.update_item(
                        TableName=self._table,
                        Key={"pk": {"S": POOL_PK}},
                        UpdateExpression=expression,
                        ConditionExpression=condition,
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                    )
                    return
                except ClientError as error:
                    if not _is_condition_failure(error):
                        raise

    def mark_ready(self, task_arn: str, now: float, jobs_per_task: int) -> WorkerRecord | None:
        """Set ``ready_at`` once, and file the worker as its record now says (ready: free)."""

        def ready(current: WorkerRecord) -> WorkerUpdate | None:
            if current.ready_at is not None:
                return None
            update = WorkerUpdate(
                sets=["#ready_at = :now"],
                conditions=["attribute_not_exists(#ready_at)"],
                names={"#ready_at": "ready_at"},
                values={":now": {"N": repr(now)}},
            )
            pin(update, current)
            file(update, current.model_copy(update={"ready_at": now}), jobs_per_task)
            return update

        return self._rewrite_worker(task_arn, ready)[0]

    def record_cold_start(self, seconds: float) -> None:
        """Read, average, write: a lost race loses one sample of a running average, no more."""
        stored = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": POOL_PK}}, ConsistentRead=True
        ).get("Item", {})
        previous = stored.get("cold_start_seconds", {}).get("N")
        value = seconds if previous is None else smoothed_cold_start(float(previous), seconds)
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": POOL_PK}},
            UpdateExpression="SET cold_start_seconds = :value",
            ExpressionAttributeValues={":value": {"N": repr(round(value, 3))}},
        )

    def live_workers(self, shards: Collection[int] | None = None) -> Iterable[WorkerRecord]:
        """Live worker items whose ``task_arn`` is the task their key belongs to: IAM keeps a
        task to its own item, not to honest contents, so a record claiming another task (or an
        item from before workers were keyed by their credentials) is skipped. A worker that wrote
        ``stopped`` stays in the index until ECS reports the task stopped (a task may not write
        ``attention``), so its status is checked here too."""
        for item in self._query_attention(WORKER_ATTENTION, shards):
            record = _worker_from_item(item)
            if (
                record is not None
                and record.status is not WorkerStatus.STOPPED
                and item["pk"]["S"] == worker_pk(record.task_arn, self._task_role_id)
            ):
                yield record

    def record_task_state(self, state: ObservedTaskState) -> bool:
        """One conditional ``UpdateItem``: newer ECS version only, and never out of ``stopped``."""
        names = {
            "#task_arn": "task_arn",
            "#ecs_version": "ecs_version",
            "#last_status": "last_status",
            "#heartbeat_at": "heartbeat_at",
            "#launched_at": "launched_at",
            "#capacity": "capacity",
            "#jobs": "jobs",
            "#reserved": "reserved",
            "#assigned": "assigned",
            "#status": "status",
        }
        values: dict[str, Any] = {
            ":task_arn": {"S": state.task_arn},
            ":version": {"N": str(state.version)},
            ":last_status": {"S": state.last_status},
            ":seen_at": {"N": repr(state.seen_at)},
            ":zero": {"N": "0"},
            ":no_jobs": {"M": {}},
            ":stopped": {"S": WorkerStatus.STOPPED.value},
        }
        sets = [
            "#task_arn = :task_arn",
            "#ecs_version = :version",
            "#last_status = :last_status",
            "#heartbeat_at = if_not_exists(#heartbeat_at, :seen_at)",
            "#launched_at = if_not_exists(#launched_at, :seen_at)",
            "#capacity = if_not_exists(#capacity, :zero)",
            "#jobs = if_not_exists(#jobs, :no_jobs)",
            "#reserved = if_not_exists(#reserved, :no_jobs)",
            "#assigned = if_not_exists(#assigned, :zero)",
        ]
        condition = "(attribute_not_exists(#ecs_version) OR #ecs_version < :version)"
        if state.stop_code is not None:
            names["#stop_code"] = "stop_code"
            values[":stop_code"] = {"S": state.stop_code}
            sets.append("#stop_code = :stop_code")
        if state.launched_for is not None:
            names["#launched_for"] = "launched_for"
            values[":launched_for"] = {"S": state.launched_for}
            sets.append("#launched_for = if_not_exists(#launched_for, :launched_for)")
        if state.stopped:
            names["#expires_at"] = "expires_at"
            values[":expires_at"] = {"N": str(int(state.seen_at) + self._retention)}
            sets += ["#status = :stopped", "#expires_at = :expires_at"]
            expression = "SET " + ", ".join(sets) + " REMOVE attention, slot_key, slot_free"
            return self._conditional_worker_update(state.task_arn, expression, condition, names, values)
        names["#attention"] = "attention"
        values[":starting"] = {"S": WorkerStatus.STARTING.value}
        values[":attention"] = {"S": attention_value(WORKER_ATTENTION, state.task_arn)}
        sets += ["#status = if_not_exists(#status, :starting)", "#attention = :attention"]
        # The write that creates the item files it as starting; any later one leaves the index.
        created = self._conditional_worker_update(
            state.task_arn,
            "SET " + ", ".join([*sets, "slot_key = :slot_key", "slot_free = :zero"]),
            "attribute_not_exists(pk)",
            names,
            {**values, ":slot_key": {"S": slot_key(STARTING, shard_of(state.task_arn, SLOT_SHARDS))}},
        )
        if created:
            return True
        condition += " AND (attribute_not_exists(#status) OR #status <> :stopped)"
        return self._conditional_worker_update(
            state.task_arn, "SET " + ", ".join(sets), condition, names, values
        )
