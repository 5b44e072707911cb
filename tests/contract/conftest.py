"""The store every store contract runs on twice: the in-memory twin and DynamoDBStore on moto."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.memory.store import InMemoryStore
from local.fixtures import create_table

Store = InMemoryStore | DynamoDBStore


@pytest.fixture(params=["twin", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "twin":
        yield InMemoryStore()
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "rooms")
        yield DynamoDBStore(client, "rooms")
