"""The sharded attention index: every write path files an item under its shard, in DynamoDB and
in the twin alike, reads by shard see exactly their items, and items of the unsharded release
are still found until rewritten."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from api.room_index import RoomIndex
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.aws_names import room_key
from control_plane.ports import ObservedTaskState
from control_plane.room import Agent, ChangeKind, Human, ParticipantChange, Room
from control_plane.shards import ATTENTION_SHARDS, group_shards, shard_of
from control_plane.worker_protocol import WorkerRecord, WorkerStatus, worker_pk
from local.fixtures import create_table

T0 = 1_800_000_000.0
ROOMS = [f"room-{n:03d}" for n in range(48)]
TASKS = [f"arn:aws:ecs:us-east-1:1:task/cluster/{n:032x}" for n in range(48)]


def join(name: str, sid: str) -> ParticipantChange:
    return ParticipantChange(kind=ChangeKind.JOINED, room=name, room_sid="RM_1", sid=sid, identity="a", at=T0)


def fill(store: InMemoryStore | DynamoDBStore) -> None:
    """Rooms through each room write path (create, save, the join fast path) and workers through
    each worker write path (ECS's task state, the worker's own record)."""
    for n, name in enumerate(ROOMS):
        if n % 3 == 0:
            humans = {f"PA_{n}": Human(identity="a", joined_at=T0)}
            store.create(Room(name=name, sid="RM_1", created_at=T0, humans=humans))
        elif n % 3 == 1:
            created = store.create(Room(name=name, sid="RM_1", created_at=T0))
            agent = Agent(launch_token=f"t-{n}", launch_claimed_at=T0, room_sid="RM_1")
            store.save(created.model_copy(update={"agent": agent}), created.version)
        else:
            store.create(Room(name=name, sid="RM_1", created_at=T0))
            store.observe_participant(join(name, f"PA_{n}"))  # the one-write fast path
    for n, arn in enumerate(TASKS):
        if n % 2 == 0:
            store.record_task_state(ObservedTaskState(arn, version=1, last_status="RUNNING", seen_at=T0))
        else:
            store.put_worker(
                WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=T0)
            )


def test_each_shard_reads_exactly_the_rooms_and_workers_that_hash_into_it(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    fill(store)
    seen_rooms: list[str] = []
    seen_workers: list[str] = []
    for shard in range(ATTENTION_SHARDS):
        rooms = [room.name for room in store.rooms_needing_attention({shard})]
        workers = [worker.task_arn for worker in store.live_workers({shard})]
        assert all(shard_of(name, ATTENTION_SHARDS) == shard for name in rooms)
        assert all(shard_of(arn, ATTENTION_SHARDS) == shard for arn in workers)
        seen_rooms += rooms
        seen_workers += workers
    assert sorted(seen_rooms) == ROOMS, "every room in exactly one shard"
    assert sorted(seen_workers) == sorted(TASKS), "every worker in exactly one shard"
    assert sorted(room.name for room in store.rooms_needing_attention()) == ROOMS
    assert len({shard_of(name, ATTENTION_SHARDS) for name in ROOMS}) > ATTENTION_SHARDS // 2, "spread"


def test_a_sweep_groups_shards_read_its_rooms_and_no_other_groups(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    fill(store)
    groups = 5
    by_group = [
        {room.name for room in store.rooms_needing_attention(group_shards(group, groups))}
        for group in range(groups)
    ]
    assert sorted(name for names in by_group for name in names) == ROOMS


def test_dynamodb_files_each_item_under_its_shards_value() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "rooms")
        store = DynamoDBStore(client, "rooms")
        fill(store)
        for name in ROOMS:
            item = client.get_item(TableName="rooms", Key={"pk": {"S": room_key(name)}})["Item"]
            assert item["attention"] == {"S": f"room#{shard_of(name, ATTENTION_SHARDS)}"}
        for arn in TASKS:
            item = client.get_item(TableName="rooms", Key={"pk": {"S": worker_pk(arn, "")}})["Item"]
            assert item["attention"] == {"S": f"worker#{shard_of(arn, ATTENTION_SHARDS)}"}


def test_items_of_the_release_before_the_shards_are_found_until_rewritten() -> None:
    """Deploying the shards leaves items tagged ``room``/``worker``: the reads still find them,
    in their shard's read only, and their next write moves them into their shard."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "rooms")
        store = DynamoDBStore(client, "rooms")
        fill(store)
        old_room, old_task = ROOMS[0], TASKS[0]
        for key, value in ((room_key(old_room), "room"), (worker_pk(old_task, ""), "worker")):
            client.update_item(
                TableName="rooms",
                Key={"pk": {"S": key}},
                UpdateExpression="SET attention = :old",
                ExpressionAttributeValues={":old": {"S": value}},
            )
        room_shard, task_shard = shard_of(old_room, ATTENTION_SHARDS), shard_of(old_task, ATTENTION_SHARDS)
        assert sorted(room.name for room in store.rooms_needing_attention()) == ROOMS, "found once"
        assert old_room in {room.name for room in store.rooms_needing_attention({room_shard})}
        others = set(range(ATTENTION_SHARDS)) - {room_shard}
        assert old_room not in {room.name for room in store.rooms_needing_attention(others)}
        assert old_task in {w.task_arn for w in store.live_workers({task_shard})}
        assert sorted(w.task_arn for w in store.live_workers()) == sorted(TASKS)

        room = store.get(old_room)
        assert room is not None
        store.save(room.model_copy(update={"launches": 1}), room.version)
        item = client.get_item(TableName="rooms", Key={"pk": {"S": room_key(old_room)}})["Item"]
        assert item["attention"] == {"S": f"room#{room_shard}"}
        assert sorted(room.name for room in store.rooms_needing_attention()) == ROOMS


@pytest.mark.parametrize("limit", [1, 7, 100])
def test_the_rooms_page_walks_every_shard_in_name_order(limit: int) -> None:
    """``GET /rooms`` pages over all shards (and the unsharded value) in name order, each room once."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "rooms")
        store = DynamoDBStore(client, "rooms")
        fill(store)
        client.update_item(
            TableName="rooms",
            Key={"pk": {"S": room_key(ROOMS[5])}},
            UpdateExpression="SET attention = :old",
            ExpressionAttributeValues={":old": {"S": "room"}},
        )
        index = RoomIndex(client, "rooms")
        listed: list[str] = []
        cursor: str | None = None
        for _ in range(len(ROOMS) + 2):
            page = index.page(limit, cursor)
            assert len(page.rooms) <= limit
            listed += [room.name for room in page.rooms]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert listed == sorted(ROOMS, key=room_key)
