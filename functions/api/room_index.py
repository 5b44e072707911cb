"""One page of the rooms in the attention index, for ``GET /rooms``.

The store's ``rooms_needing_attention`` reads the whole index (the sweeper wants all of it);
a listing wants a page and a cursor, so this reads the same sparse index with ``Limit`` and
``ExclusiveStartKey``: never a table scan, and cost in proportion to the page. The cursor is
the last room key of the page, base64url-encoded; any other value is refused.

Only ``ROOM#`` keys are read (``begins_with`` on the index's sort key): a task may write its own
``TASK#`` item, and one tagged ``attention=room`` must neither break the page nor list a room.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api.errors import BadCursor
from control_plane.adapters.dynamodb_store import ATTENTION_INDEX, ROOM_ATTENTION, room_from_item
from control_plane.room import Room
from control_plane.worker_protocol import ROOM_PK_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


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
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": ATTENTION_INDEX,
            "KeyConditionExpression": "attention = :a AND begins_with(pk, :rooms)",
            "ExpressionAttributeValues": {":a": {"S": ROOM_ATTENTION}, ":rooms": {"S": ROOM_PK_PREFIX}},
            "Limit": limit,
        }
        if cursor is not None:
            pk = decode_cursor(cursor)
            request["ExclusiveStartKey"] = {"pk": {"S": pk}, "attention": {"S": ROOM_ATTENTION}}
        response = self._client.query(**request)
        last = response.get("LastEvaluatedKey")
        return IndexPage(
            rooms=[room_from_item(item) for item in response.get("Items", [])],
            next_cursor=encode_cursor(str(last["pk"]["S"])) if last else None,
        )
