"""The slot index on both stores: every write that changes a worker's slots keeps its keys.

Each test runs on the twin and on DynamoDB (moto, with the table's ``slot-index``), reading the
keys back both from the item and through the index query a slot decision makes.
"""

from __future__ import annotations

import pytest

from control_plane.ports import ObservedTaskState
from control_plane.shards import shard_of
from control_plane.slot_index import SLOT_SHARDS
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from tests.contract.conftest import Store

T0 = 1_800_000_000.0
JOBS = 10


def shard(arn: str) -> int:
    return shard_of(arn, SLOT_SHARDS)


def keys(store: Store, arn: str) -> tuple[str | None, int | None]:
    """The index attributes as stored, checked against what the index query returns."""
    worker = store.get_worker(arn)
    assert worker is not None
    in_pool = {w.task_arn: (w.slot_key, w.slot_free) for w in store.pool_workers()}
    assert in_pool.get(arn, (None, None)) == (worker.slot_key, worker.slot_free), "the index agrees"
    return worker.slot_key, worker.slot_free


def launched(store: Store, arn: str = "arn:task/1") -> None:
    store.record_task_state(ObservedTaskState(arn, version=0, last_status="PROVISIONING", seen_at=T0))


def ready(store: Store, arn: str = "arn:task/1", capacity: int = 3) -> WorkerRecord:
    """Launched, registered (the worker's own write) and its ready message handled."""
    launched(store, arn)
    store.put_worker(
        WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=capacity, heartbeat_at=T0)
    )
    marked = store.mark_ready(arn, T0 + 1, JOBS)
    assert marked is not None
    return marked


def test_a_launched_task_is_starting_until_its_ready_message_files_its_free_slots(store: Store) -> None:
    launched(store)
    assert keys(store, "arn:task/1") == (f"starting#{shard('arn:task/1')}", 0)
    store.record_task_state(ObservedTaskState("arn:task/1", version=1, last_status="RUNNING", seen_at=T0))
    assert keys(store, "arn:task/1") == (f"starting#{shard('arn:task/1')}", 0), "a later event keeps it"

    # The worker's own write says ready; its task role may not touch the keys.
    store.put_worker(
        WorkerRecord(task_arn="arn:task/1", status=WorkerStatus.READY, capacity=3, heartbeat_at=T0)
    )
    assert keys(store, "arn:task/1") == (f"starting#{shard('arn:task/1')}", 0)

    assert store.mark_ready("arn:task/1", T0 + 1, JOBS) is not None
    assert keys(store, "arn:task/1") == (f"free#{shard('arn:task/1')}", 3)
    assert [w.task_arn for w in store.open_workers(shard("arn:task/1"), 3)] == ["arn:task/1"]
    assert store.mark_ready("arn:task/1", T0 + 2, JOBS) is None, "once"


def test_reserve_and_release_keep_the_free_count_and_the_last_slot_leaves_the_index(store: Store) -> None:
    worker = ready(store, capacity=2)
    free = f"free#{shard('arn:task/1')}"

    assert store.reserve_slot(worker, "room-a", T0 + 2, JOBS)
    assert keys(store, "arn:task/1") == (free, 1)
    # A listing read before the first reservation: the write finds the item moved on, reads it
    # again and judges that.
    assert store.reserve_slot(worker, "room-b", T0 + 3, JOBS)
    assert keys(store, "arn:task/1") == (None, None)
    assert store.open_workers(shard("arn:task/1"), 3) == []

    after = store.release_slot("arn:task/1", "room-a", JOBS, unassign=True)
    assert after is not None and (after.slot_key, after.slot_free) == (free, 1)
    assert keys(store, "arn:task/1") == (free, 1)


def test_a_spent_worker_leaves_the_index_with_slots_left(store: Store) -> None:
    worker = ready(store, capacity=3)
    assert store.reserve_slot(worker, "room-a", T0 + 2, jobs_per_task=1)
    assert keys(store, "arn:task/1") == (None, None), "JOBS_PER_TASK reached"
    store.release_slot("arn:task/1", "room-a", 1)
    assert keys(store, "arn:task/1") == (None, None), "the room still counts toward its life"


def test_adopt_and_reap_keep_the_keys(store: Store) -> None:
    ready(store, capacity=3)
    free = f"free#{shard('arn:task/1')}"
    store.adopt_slot("arn:task/1", "room-a", T0 + 5, JOBS)
    assert keys(store, "arn:task/1") == (free, 2)
    assert store.reap_slot("arn:task/1", "room-a", T0 + 5, JOBS)
    assert keys(store, "arn:task/1") == (free, 3)


@pytest.mark.parametrize("drain", ["drain_if_idle", "drain_after", "mark_draining"])
def test_a_draining_worker_leaves_the_index(store: Store, drain: str) -> None:
    ready(store)
    if drain == "drain_after":
        assert store.drain_after("arn:task/1", "room-a") is not None
    elif drain == "drain_if_idle":
        assert store.drain_if_idle("arn:task/1")
    else:
        store.mark_draining("arn:task/1")
    assert keys(store, "arn:task/1") == (None, None)


@pytest.mark.parametrize("how", ["ecs_event", "sweep"])
def test_a_stopped_worker_leaves_the_index(store: Store, how: str) -> None:
    worker = ready(store)
    if how == "ecs_event":
        stopped = ObservedTaskState("arn:task/1", version=5, last_status="STOPPED", seen_at=T0 + 9)
        store.record_task_state(stopped)
    else:
        store.put_worker(worker.model_copy(update={"status": WorkerStatus.STOPPED}))
    assert keys(store, "arn:task/1") == (None, None)


def test_the_sweep_refiles_what_a_workers_own_write_left_behind(store: Store) -> None:
    ready(store, capacity=3)
    # The worker drains by itself (its own write): still filed free, which it no longer is.
    store.put_worker(
        WorkerRecord(task_arn="arn:task/1", status=WorkerStatus.DRAINING, capacity=3, heartbeat_at=T0 + 15)
    )
    listed = store.get_worker("arn:task/1")
    assert listed is not None and listed.slot_key is not None

    store.put_worker(
        WorkerRecord(task_arn="arn:task/1", status=WorkerStatus.READY, capacity=3, heartbeat_at=T0 + 16)
    )
    assert not store.refile_slot(listed, JOBS), "the item changed since it was listed"
    assert keys(store, "arn:task/1")[0] is not None

    store.put_worker(
        WorkerRecord(task_arn="arn:task/1", status=WorkerStatus.DRAINING, capacity=3, heartbeat_at=T0 + 17)
    )
    fresh = store.get_worker("arn:task/1")
    assert fresh is not None and store.refile_slot(fresh, JOBS)
    assert keys(store, "arn:task/1") == (None, None)


def test_a_shard_lists_the_fullest_first_up_to_the_limit(store: Store) -> None:
    arns = [f"arn:task/{n}" for n in range(200)]
    same = [arn for arn in arns if shard(arn) == 0][:5]
    for number, arn in enumerate(same):
        worker = ready(store, arn, capacity=4)
        for room in range(number % 4):
            assert store.reserve_slot(worker, f"room-{arn}-{room}", T0 + 2, JOBS)
            refreshed = store.get_worker(arn)
            assert refreshed is not None
            worker = refreshed

    listed = store.open_workers(0, 3)

    assert len(listed) == 3
    assert [w.slot_free for w in listed] == sorted(w.slot_free or 0 for w in listed)
    assert listed[0].slot_free == 1, "the fullest first: packing leaves whole tasks idle"
    assert all(w.slot_key == "free#0" for w in listed)
