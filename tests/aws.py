"""AWS resources for tests, shaped like template.yaml (tests/infra checks they agree)."""

from __future__ import annotations

from typing import Any

TABLE_KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}]
TABLE_ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "attention", "AttributeType": "S"},
    {"AttributeName": "slot_key", "AttributeType": "S"},
    {"AttributeName": "slot_free", "AttributeType": "N"},
]
ATTENTION_INDEX = {
    "IndexName": "attention-index",
    "KeySchema": [
        {"AttributeName": "attention", "KeyType": "HASH"},
        {"AttributeName": "pk", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}
SLOT_INDEX = {
    "IndexName": "slot-index",
    "KeySchema": [
        {"AttributeName": "slot_key", "KeyType": "HASH"},
        {"AttributeName": "slot_free", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}


def create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=TABLE_KEY_SCHEMA,
        AttributeDefinitions=TABLE_ATTRIBUTES,
        GlobalSecondaryIndexes=[ATTENTION_INDEX, SLOT_INDEX],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


class CallCounter:
    """Counts AWS API calls a boto3 client makes, by operation name."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, int] = {}
        client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def reset(self) -> None:
        self.calls.clear()
