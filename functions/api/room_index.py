"""One page of the rooms in the attention index, for ``GET /rooms``.

The store's ``rooms_needing_attention`` reads the whole index (the sweeper wants all of it);
a listing wants a page and a cursor, so this reads the same sparse index with ``Limit``: never
a table scan. Rooms are spread over the index's shards (``room#0`` … ``room#15``, and the
unsharded ``room`` of items written before the shards), each in key order, so a page is the
first ``limit`` keys after the cursor over all of them: one query of at most ``limit + 1``
items per shard, merged. The cursor is the last room key of the page, base64url-encoded; any
other value is refused.

Only ``ROOM#`` keys are read (a range on the index's sort key): a task may write its own
``TASK#`` item, and one tagged ``attention=room…`` must neither break the page nor list a room.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api.errors import BadCursor
from control_plane.adapters.dynamodb_store import (
    ATTENTION_INDEX,
    LEGACY_ATTENTION,
    ROOM_ATTENTION,
    room_from_item,
)
from control_plane.room import Room
from control_plane.shards import attention_values
from control_plane.worker_protocol import ROOM_PK_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# Past every room key: "$" follows "#", so ``ROOM#…`` < ``ROOM$`` and no room key is it.
_PAST_ROOMS = ROOM_PK_PREFIX[:-1] + chr(ord(ROOM_PK_PREFIX[-1]) + 1)


@dataclass(frozen=True)
class IndexPage:
    rooms: list[Room]
    next_cursor: str | None


def encode_cursor(pk: str) -> str:
    return base64.urlsafe_b64encode(pk.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        pk = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise BadCursor("cursor is not one this API handed out") from error
    if not pk.startswith(ROOM_PK_PREFIX) or pk == ROOM_PK_PREFIX:
        raise BadCursor("cursor is not one this API handed out")
    return pk


class RoomIndex:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def page(self, limit: int, cursor: str | None = None) -> IndexPage:
        """Up to ``limit`` rooms after ``cursor``, in name order; ``next_cursor`` is None at the end."""
        after = decode_cursor(cursor) if cursor is not None else None
        found: list[dict[str, Any]] = []
        # A shard that holds more than it returned bounds the page at its last key returned:
        # past that, its unread rooms would be skipped.
        bound: str | None = None
        for value in [*attention_values(ROOM_ATTENTION), LEGACY_ATTENTION[ROOM_ATTENTION]]:
            items, truncated = self._after(value, after, limit)
            found += items
            if truncated and items:
                last = str(items[-1]["pk"]["S"])
                bound = last if bound is None else min(bound, last)
        found.sort(key=lambda item: str(item["pk"]["S"]))
        kept = [item for item in found if bound is None or str(item["pk"]["S"]) <= bound]
        page = kept[:limit]
        more = bound is not None or len(kept) > limit
        return IndexPage(
            rooms=[room_from_item(item) for item in page],
            next_cursor=encode_cursor(str(page[-1]["pk"]["S"])) if more and page else None,
        )

    def _after(self, value: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """One shard's first room items past ``after`` (at most ``limit``), and whether it may
        hold more than it returned."""
        response = self._client.query(
            TableName=self._table,
            IndexName=ATTENTION_INDEX,
            KeyConditionExpression="attention = :a AND pk BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":a": {"S": value},
                ":low": {"S": after or ROOM_PK_PREFIX},
                ":high": {"S": _PAST_ROOMS},
            },
            Limit=limit + 1,  # BETWEEN includes the cursor's own key
        )
        items = [item for item in response.get("Items", []) if item["pk"]["S"] != after]
        return items[:limit], len(items) > limit or "LastEvaluatedKey" in response
