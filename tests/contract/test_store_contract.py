"""One suite, two implementations: the in-memory twin and DynamoDB (moto) must agree."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.ports import ObservedTaskState, VersionConflict
from control_plane.room import (
    DEFAULT_RETENTION_SECONDS,
    DEPARTED_PRUNE_THRESHOLD,
    Agent,
    ChangeKind,
    CloseReason,
    ParticipantChange,
    Room,
    RoomState,
)
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from local.fixtures import CallCounter, create_table

T0 = 1_800_000_000.0


def change(kind: ChangeKind, sid: str, at: float = T0, room_sid: str = "RM_1") -> ParticipantChange:
    return ParticipantChange(kind=kind, room="room-1", room_sid=room_sid, sid=sid, identity="alice", at=at)


def test_create_get_and_versioned_save(store: InMemoryStore | DynamoDBStore) -> None:
    created = store.create(Room(name="room-1", sid="RM_1", created_at=T0))
    assert created.version == 1
    assert store.get("room-1") == created

    with pytest.raises(VersionConflict):
        store.create(Room(name="room-1", sid="RM_1"))

    agent = Agent(launch_token="tok-1", launch_claimed_at=T0, room_sid="RM_1")
    saved = store.save(created.model_copy(update={"agent": agent}), expected_version=1)
    assert saved.version == 2
    assert store.get("room-1") == saved

    with pytest.raises(VersionConflict):
        store.save(created.model_copy(update={"launches": 5}), expected_version=1)
    assert store.get("room-1") == saved, "a losing write changes nothing"


def test_a_closed_room_keeps_why_it_closed(store: InMemoryStore | DynamoDBStore) -> None:
    created = store.create(Room(name="room-1", sid="RM_1", created_at=T0))
    closing = created.model_copy(
        update={"stop_requested_at": T0 + 1, "closed_reason": CloseReason.GRACE_ENDED}
    )
    stopping = store.save(closing, created.version)
    done = stopping.model_copy(update={"stop_requested_at": None, "closed_at": T0 + 2})

    saved = store.save(done, stopping.version)

    assert store.get("room-1") == saved
    assert saved.closed_reason is CloseReason.GRACE_ENDED and saved.state is RoomState.CLOSED
    reopened = store.save(saved.model_copy(update={"closed_at": None, "closed_reason": None}), saved.version)
    assert store.get("room-1") == reopened and reopened.closed_reason is None


def test_save_of_a_missing_room_is_a_conflict(store: InMemoryStore | DynamoDBStore) -> None:
    with pytest.raises(VersionConflict):
        store.save(Room(name="ghost"), expected_version=3)


def test_observe_join_creates_the_room_and_counts_humans(store: InMemoryStore | DynamoDBStore) -> None:
    first = store.observe_participant(change(ChangeKind.JOINED, "PA_1"))
    second = store.observe_participant(change(ChangeKind.JOINED, "PA_2", at=T0 + 1))

    assert set(first.humans) == {"PA_1"}
    assert set(second.humans) == {"PA_1", "PA_2"}
    assert second.humans["PA_2"].joined_at == T0 + 1
    assert second.version > first.version
    assert store.get("room-1") == second


def test_duplicate_join_changes_nothing(store: InMemoryStore | DynamoDBStore) -> None:
    store.observe_participant(change(ChangeKind.JOINED, "PA_1"))
    before = store.get("room-1")
    again = store.observe_participant(change(ChangeKind.JOINED, "PA_1", at=T0 + 5))

    assert again == before
    assert store.get("room-1") == before


def test_leave_before_join_keeps_the_participant_out(store: InMemoryStore | DynamoDBStore) -> None:
    store.observe_participant(change(ChangeKind.JOINED, "PA_0"))
    store.observe_participant(change(ChangeKind.LEFT, "PA_1", at=T0 + 2))
    late = store.observe_participant(change(ChangeKind.JOINED, "PA_1", at=T0 + 1))

    assert set(late.humans) == {"PA_0"}
    assert "PA_1" in late.departed


def test_a_new_room_sid_starts_a_new_session(store: InMemoryStore | DynamoDBStore) -> None:
    store.observe_participant(change(ChangeKind.JOINED, "PA_1"))
    store.observe_participant(change(ChangeKind.LEFT, "PA_1", at=T0 + 1))
    fresh = store.observe_participant(change(ChangeKind.JOINED, "PA_1", at=T0 + 9, room_sid="RM_2"))

    assert fresh.sid == "RM_2"
    assert set(fresh.humans) == {"PA_1"}
    assert fresh.departed == {}


def test_event_ids_are_claimed_once_until_they_expire(store: InMemoryStore | DynamoDBStore) -> None:
    now = int(T0)
    assert store.claim_event("EV_1", now, now + 100) is True
    assert store.claim_event("EV_1", now + 1, now + 101) is False
    assert store.claim_event("EV_1", now + 101, now + 201) is True, "TTL lags: an expired id counts as new"
    store.release_event("EV_1")
    assert store.claim_event("EV_1", now + 102, now + 202) is True


def test_sparse_index_lists_only_rooms_needing_attention(store: InMemoryStore | DynamoDBStore) -> None:
    agent = Agent(launch_token="t", launch_claimed_at=T0, room_sid="RM_1")
    store.observe_participant(change(ChangeKind.JOINED, "PA_1"))
    active = store.get("room-1")
    store.save(active.model_copy(update={"agent": agent}), active.version)
    store.create(Room(name="closed-room", sid="RM_9", closed_at=T0))
    store.create(Room(name="idle-room", sid="RM_8"))

    names = {room.name for room in store.rooms_needing_attention()}
    assert names == {"room-1"}
    assert store.get("closed-room").state is RoomState.CLOSED


def test_worker_records_keep_the_drain_request(store: InMemoryStore | DynamoDBStore) -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012:task/agents/abc"
    record = WorkerRecord(
        task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=T0, jobs={"room-1": "AJ_1"}
    )
    store.put_worker(record)
    store.mark_draining(arn)
    store.put_worker(record.model_copy(update={"heartbeat_at": T0 + 10}))

    stored = store.get_worker(arn)
    assert stored.draining is True, "a heartbeat must not undo a drain request"
    assert stored.heartbeat_at == T0 + 10
    assert stored.jobs == {"room-1": "AJ_1"}
    assert [w.task_arn for w in store.live_workers()] == [arn]

    store.put_worker(record.model_copy(update={"status": WorkerStatus.STOPPED}))
    assert list(store.live_workers()) == []
    assert store.get_worker("arn:missing") is None
    store.mark_draining("arn:missing")  # a worker that is gone needs no drain
    assert store.get_worker("arn:missing") is None


def test_dynamodb_join_to_a_live_room_is_one_write_and_no_read() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "rooms")
        store = DynamoDBStore(client, "rooms")
        store.observe_participant(change(ChangeKind.JOINED, "PA_1"))
        counter = CallCounter(client)

        store.observe_participant(change(ChangeKind.JOINED, "PA_2"))
        store.observe_participant(change(ChangeKind.LEFT, "PA_2", at=T0 + 3))

        assert counter.calls == {"UpdateItem": 2}


TASK = "arn:aws:ecs:us-east-1:123456789012:task/agents/def"


def observed(version: int, last_status: str = "RUNNING", **kwargs: object) -> ObservedTaskState:
    return ObservedTaskState(task_arn=TASK, version=version, last_status=last_status, seen_at=T0, **kwargs)  # type: ignore[arg-type]


def test_task_state_creates_a_starting_record_for_a_task_not_yet_heard_from(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    assert store.record_task_state(observed(2, launched_for="room-1")) is True

    record = store.get_worker(TASK)
    assert (record.status, record.last_status, record.ecs_version) == (WorkerStatus.STARTING, "RUNNING", 2)
    assert (record.launched_for, record.capacity, record.jobs, record.heartbeat_at) == ("room-1", 0, {}, T0)
    assert [w.task_arn for w in store.live_workers()] == [TASK]


def test_task_state_keeps_only_the_newest_version_and_the_workers_own_fields(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    worker = WorkerRecord(
        task_arn=TASK, status=WorkerStatus.READY, capacity=1, heartbeat_at=T0 + 5, jobs={"r": "AJ"}
    )
    store.put_worker(worker)

    assert store.record_task_state(observed(3)) is True
    assert store.record_task_state(observed(3)) is False, "a repeated event"
    assert store.record_task_state(observed(2, "PENDING")) is False, "an older event"

    record = store.get_worker(TASK)
    assert (record.ecs_version, record.last_status) == (3, "RUNNING")
    assert (record.status, record.heartbeat_at, record.jobs, record.capacity) == (
        WorkerStatus.READY,
        T0 + 5,
        {"r": "AJ"},
        1,
    )


def test_stopped_task_leaves_the_index_and_never_comes_back(store: InMemoryStore | DynamoDBStore) -> None:
    store.record_task_state(observed(2))

    assert store.record_task_state(observed(5, "STOPPED", stop_code="EssentialContainerExited")) is True
    assert store.record_task_state(observed(6, "RUNNING")) is False, "nothing revives a stopped task"

    record = store.get_worker(TASK)
    assert (record.status, record.stop_code) == (WorkerStatus.STOPPED, "EssentialContainerExited")
    assert list(store.live_workers()) == []


def test_sweep_cursor_is_remembered_until_cleared(store: InMemoryStore | DynamoDBStore) -> None:
    assert store.get_sweep_cursor() is None
    store.put_sweep_cursor("room-42")
    assert store.get_sweep_cursor() == "room-42"
    store.put_sweep_cursor("room-7", group=3)
    assert (store.get_sweep_cursor(), store.get_sweep_cursor(3)) == ("room-42", "room-7"), "one per group"
    store.put_sweep_cursor(None)
    assert (store.get_sweep_cursor(), store.get_sweep_cursor(3)) == (None, "room-7")


def test_new_human_in_a_failed_room_clears_the_failure(store: InMemoryStore | DynamoDBStore) -> None:
    store.observe_participant(change(ChangeKind.JOINED, "PA_1"))
    room = store.get("room-1")
    store.save(room.model_copy(update={"failed_at": T0, "crashes": (T0 - 20, T0 - 10, T0)}), room.version)

    again = store.observe_participant(change(ChangeKind.JOINED, "PA_1", at=T0 + 1))
    assert again.failed_at == T0, "a replayed join is not a new human"

    rejoined = store.observe_participant(change(ChangeKind.JOINED, "PA_2", at=T0 + 2))
    assert (rejoined.failed_at, rejoined.crashes) == (None, ())
    assert set(rejoined.humans) == {"PA_1", "PA_2"}
    assert store.get("room-1") == rejoined


def indexed(store: InMemoryStore | DynamoDBStore) -> set[str]:
    return {room.name for room in store.rooms_needing_attention()}


def test_every_write_path_stores_the_index_attribute_and_expiry_alike(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    """What each write stores decides what the sweeper reads: twin and DynamoDB must agree."""
    started = store.create(Room(name="room-1", sid="RM_1", created_at=T0, updated_at=T0))
    assert (indexed(store), started.in_attention_index) == (set(), False)
    assert started.expires_at == int(T0) + DEFAULT_RETENTION_SECONDS, "a room nobody joins must expire"

    joined = store.observe_participant(change(ChangeKind.JOINED, "PA_1", at=T0 + 1))
    assert (indexed(store), joined.in_attention_index, joined.expires_at) == ({"room-1"}, True, None), (
        "the join fast path alone must put a waiting human where the sweeper looks"
    )
    assert store.get("room-1") == joined

    agent = Agent(launch_token="tok-1", launch_claimed_at=T0 + 1, room_sid="RM_1")
    active = store.save(joined.model_copy(update={"agent": agent}), joined.version)
    left = store.observe_participant(change(ChangeKind.LEFT, "PA_1", at=T0 + 2))
    assert (indexed(store), left.in_attention_index) == ({"room-1"}, True)

    closed = store.save(
        left.model_copy(update={"agent": None, "closed_at": T0 + 3, "expires_at": int(T0) + 99}), left.version
    )
    assert (indexed(store), closed.in_attention_index, closed.expires_at) == (set(), False, int(T0) + 99)

    back = store.observe_participant(change(ChangeKind.JOINED, "PA_2", at=T0 + 4))
    assert (indexed(store), back.in_attention_index, back.expires_at) == ({"room-1"}, True, None)
    gone = store.observe_participant(change(ChangeKind.LEFT, "PA_2", at=T0 + 5))
    assert (indexed(store), gone.in_attention_index) == ({"room-1"}, True), (
        "a leave's fast path does not recompute the index: the next full write does"
    )
    assert not gone.needs_attention and active.version < gone.version
    assert store.get("room-1") == gone


def test_an_earlier_sessions_event_changes_nothing(store: InMemoryStore | DynamoDBStore) -> None:
    store.observe_participant(
        change(ChangeKind.JOINED, "PA_1", room_sid="RM_1").model_copy(update={"room_created_at": T0})
    )
    newer = change(ChangeKind.JOINED, "PA_2", at=T0 + 60, room_sid="RM_2").model_copy(
        update={"room_created_at": T0 + 50}
    )
    current = store.observe_participant(newer)
    assert (current.sid, set(current.humans), current.ended_sessions) == ("RM_2", {"PA_2"}, ("RM_1",))

    for late in (
        change(ChangeKind.LEFT, "PA_1", at=T0 + 70, room_sid="RM_1"),
        change(ChangeKind.JOINED, "PA_9", at=T0 + 71, room_sid="RM_1"),
    ):
        after = store.observe_participant(late.model_copy(update={"room_created_at": T0}))
        assert after == current, "a retried event of the ended session must not roll the room back"
    assert store.get("room-1") == current


def test_departed_sids_stay_bounded_in_a_high_churn_room(store: InMemoryStore | DynamoDBStore) -> None:
    for n in range(3 * DEPARTED_PRUNE_THRESHOLD):
        store.observe_participant(change(ChangeKind.JOINED, f"PA_{n}", at=T0 + n))
        store.observe_participant(change(ChangeKind.LEFT, f"PA_{n}", at=T0 + n + 0.5))
    room = store.get("room-1")
    assert room is not None
    assert len(room.departed) <= DEPARTED_PRUNE_THRESHOLD
    assert f"PA_{3 * DEPARTED_PRUNE_THRESHOLD - 1}" in room.departed, "the newest departures are kept"
    assert len(room.model_dump_json()) < 100_000, "far below DynamoDB's 400 KB item limit"


def test_a_stopped_worker_record_expires_however_it_was_stopped(store: InMemoryStore | DynamoDBStore) -> None:
    store.record_task_state(observed(1, "RUNNING"))
    store.record_task_state(observed(2, "STOPPED"))
    assert store.get_worker(TASK).expires_at == int(T0) + DEFAULT_RETENTION_SECONDS

    other = TASK.replace("/def", "/abc")
    store.put_worker(WorkerRecord(task_arn=other, status=WorkerStatus.READY, capacity=1, heartbeat_at=T0))
    assert store.get_worker(other).expires_at is None, "a live worker never expires"
    store.put_worker(store.get_worker(other).model_copy(update={"status": WorkerStatus.STOPPED}))
    assert store.get_worker(other).expires_at == int(T0) + DEFAULT_RETENTION_SECONDS


def test_a_task_cannot_pass_its_own_item_off_as_another_worker_or_a_room() -> None:
    """IAM keeps a task to its own item, not to honest contents: reads check the key."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "rooms")
        store = DynamoDBStore(client, "rooms", task_role_id="AROAROLE")
        honest = TASK.replace("/def", "/abc")
        store.put_worker(
            WorkerRecord(task_arn=honest, status=WorkerStatus.READY, capacity=1, heartbeat_at=T0)
        )
        # The task "def" writes its own item claiming to be task "abc", and one posing as a room.
        own_key = {"S": "TASK#AROAROLE:def"}
        client.put_item(
            TableName="rooms",
            Item={
                "pk": own_key,
                "task_arn": {"S": honest},
                "status": {"S": "ready"},
                "capacity": {"N": "9"},
                "heartbeat_at": {"N": str(T0)},
                "attention": {"S": "worker"},
            },
        )
        assert [w.capacity for w in store.live_workers()] == [1], "only the honest record is believed"
        assert store.get_worker(TASK) is None, "an item naming another task is no record of its own"
        client.put_item(
            TableName="rooms",
            Item={"pk": own_key, "name": {"S": "room-9"}, "attention": {"S": "room"}},
        )
        assert list(store.rooms_needing_attention()) == []


# --- the warm pool: slots, drains, waiting rooms, demand ------------------------------------


def ready_worker(
    store: InMemoryStore | DynamoDBStore, arn: str = "arn:task/1", capacity: int = 1
) -> WorkerRecord:
    """A worker that was launched (ECS event first, as in production) and reported ready."""
    store.record_task_state(ObservedTaskState(arn, version=1, last_status="RUNNING", seen_at=T0))
    record = WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=capacity, heartbeat_at=T0 + 30)
    store.put_worker(record)
    stored = store.get_worker(arn)
    assert stored is not None
    return stored


def test_two_rooms_racing_for_the_last_slot_only_one_gets_it(store: InMemoryStore | DynamoDBStore) -> None:
    read_by_both = ready_worker(store)

    first = store.reserve_slot(read_by_both, "room-a", T0 + 31, jobs_per_task=5)
    second = store.reserve_slot(read_by_both, "room-b", T0 + 31, jobs_per_task=5)

    assert (first, second) == (True, False)
    after = store.get_worker("arn:task/1")
    assert after is not None and after.reserved == {"room-a": T0 + 31} and after.assigned == 1
    assert after.launched_at == T0, "first seen by ECS, kept through the worker's writes"


def test_a_slot_is_refused_when_the_worker_drains_is_spent_or_runs_other_jobs(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    worker = ready_worker(store, capacity=2)
    store.put_worker(worker.model_copy(update={"jobs": {"room-x": "AJ_x"}, "heartbeat_at": T0 + 40}))
    busy = store.get_worker(worker.task_arn)
    assert busy is not None
    assert store.reserve_slot(busy, "room-a", T0 + 41, jobs_per_task=5) is True
    assert store.reserve_slot(busy, "room-b", T0 + 41, jobs_per_task=5) is False, "room-x's job holds a slot"

    spent = ready_worker(store, "arn:task/2", capacity=3)
    assert store.reserve_slot(spent, "room-c", T0 + 41, jobs_per_task=1) is True
    assert store.reserve_slot(spent, "room-d", T0 + 41, jobs_per_task=1) is False, "JOBS_PER_TASK reached"

    draining = ready_worker(store, "arn:task/3")
    store.mark_draining(draining.task_arn)
    assert store.reserve_slot(draining, "room-e", T0 + 41, jobs_per_task=5) is False


def test_a_worker_heartbeat_never_undoes_the_control_planes_slots(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    worker = ready_worker(store)
    store.reserve_slot(worker, "room-a", T0 + 31, jobs_per_task=5)

    store.put_worker(worker.model_copy(update={"heartbeat_at": T0 + 45, "reserved": {}, "assigned": 0}))

    after = store.get_worker(worker.task_arn)
    assert after is not None and after.reserved == {"room-a": T0 + 31} and after.assigned == 1


def test_a_slot_follows_the_job_to_the_worker_livekit_chose(store: InMemoryStore | DynamoDBStore) -> None:
    reserved_on = ready_worker(store, "arn:task/1")
    ready_worker(store, "arn:task/2")
    store.reserve_slot(reserved_on, "room-a", T0 + 31, jobs_per_task=1)

    store.adopt_slot("arn:task/2", "room-a", T0 + 33, 4)
    store.adopt_slot("arn:task/2", "room-a", T0 + 34, 4)  # a redelivered JobStarted counts once
    released = store.release_slot("arn:task/1", "room-a", 4, unassign=True)

    ran_on = store.get_worker("arn:task/2")
    assert ran_on is not None and ran_on.reserved == {"room-a": T0 + 33} and ran_on.assigned == 1
    assert released is not None and released.reserved == {} and released.assigned == 0
    assert store.release_slot("arn:task/1", "room-a", 4) == released, "releasing twice changes nothing"


def test_only_a_worker_hosting_nothing_is_drained(store: InMemoryStore | DynamoDBStore) -> None:
    holding = ready_worker(store, "arn:task/1")
    store.reserve_slot(holding, "room-a", T0 + 31, jobs_per_task=5)
    running = ready_worker(store, "arn:task/2")
    store.put_worker(running.model_copy(update={"jobs": {"room-b": "AJ_b"}}))
    idle = ready_worker(store, "arn:task/3")

    assert store.drain_if_idle("arn:task/1") is False
    assert store.drain_if_idle("arn:task/2") is False
    assert store.drain_if_idle(idle.task_arn) is True
    drained = store.get_worker(idle.task_arn)
    assert drained is not None and drained.draining
    assert store.reserve_slot(idle, "room-c", T0 + 50, jobs_per_task=5) is False


def test_waiting_rooms_are_listed_oldest_first_and_keep_their_first_time(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    store.put_waiting("room-b", T0 + 5)
    store.put_waiting("room-a", T0 + 9)
    store.put_waiting("room-b", T0 + 20)  # still waiting: keeps its place

    assert store.waiting_rooms() == [("room-b", T0 + 5), ("room-a", T0 + 9)]
    assert store.is_waiting("room-b") and not store.is_waiting("room-c")
    store.remove_waiting("room-b")
    store.remove_waiting("room-b")
    assert store.waiting_rooms() == [("room-a", T0 + 9)]
    assert not store.is_waiting("room-b")
    assert [room.name for room in store.rooms_needing_attention()] == [], "waiting items are not rooms"


def test_demand_counts_arrivals_per_minute_and_averages_cold_starts(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    start = 60.0 * 30_000_000
    for offset in (0, 10, 59, 60, 61):
        store.count_arrival(start + offset)
    store.count_arrival(start + 16 * 60)  # the ring slot of the first minute, reused
    store.record_cold_start(40.0)
    store.record_cold_start(80.0)

    demand = store.pool_demand()
    minute = int(start // 60)
    assert demand.arrivals == {minute + 1: 2, minute + 16: 1}
    assert demand.cold_start_seconds == pytest.approx(48.0)


def test_readiness_is_recorded_once_per_task_and_heartbeats_keep_it(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    store.record_task_state(
        ObservedTaskState(task_arn="arn:t1", version=1, last_status="PENDING", seen_at=T0)
    )
    store.put_worker(
        WorkerRecord(task_arn="arn:t1", status=WorkerStatus.READY, capacity=1, heartbeat_at=T0 + 40)
    )

    first = store.mark_ready("arn:t1", T0 + 40, 1)
    again = store.mark_ready("arn:t1", T0 + 3 * 3600, 1)  # a reconnect re-sends WorkerReady
    store.put_worker(
        WorkerRecord(task_arn="arn:t1", status=WorkerStatus.READY, capacity=1, heartbeat_at=T0 + 60)
    )

    assert first is not None and first.ready_at == T0 + 40 and first.launched_at == T0
    assert again is None
    assert store.mark_ready("arn:unknown", T0, 1) is None
    stored = store.get_worker("arn:t1")
    assert stored is not None and stored.ready_at == T0 + 40, "a heartbeat never rewrites ready_at"


def test_a_released_worker_is_drained_only_if_nothing_but_the_ending_room_is_on_it(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    for arn in ("arn:free", "arn:reserved", "arn:other-job", "arn:own-job"):
        store.put_worker(WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=2, heartbeat_at=T0))
    store.reserve_slot(store.get_worker("arn:reserved"), "room-b", T0, jobs_per_task=2)
    store.put_worker(
        WorkerRecord(
            task_arn="arn:other-job",
            status=WorkerStatus.READY,
            capacity=2,
            heartbeat_at=T0,
            jobs={"room-b": "J"},
        )
    )
    store.put_worker(
        WorkerRecord(
            task_arn="arn:own-job",
            status=WorkerStatus.READY,
            capacity=2,
            heartbeat_at=T0,
            jobs={"room-a": "J"},
        )
    )

    drained = store.drain_after("arn:free", "room-a")
    assert drained is not None and drained.draining
    assert store.drain_after("arn:reserved", "room-a") is None, "another room reserved it meanwhile"
    assert store.drain_after("arn:other-job", "room-a") is None, "LiveKit handed it another room's job"
    own = store.drain_after("arn:own-job", "room-a")
    assert own is not None and own.draining and own.jobs == {"room-a": "J"}
    assert store.drain_after("arn:unknown", "room-a") is None
    assert sorted(w.task_arn for w in store.live_workers() if w.draining) == ["arn:free", "arn:own-job"]


def test_an_orphaned_slot_is_reaped_only_if_it_is_still_that_reservation_and_no_job_runs(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    store.put_worker(WorkerRecord(task_arn="arn:w", status=WorkerStatus.READY, capacity=3, heartbeat_at=T0))
    worker = store.get_worker("arn:w")
    assert store.reserve_slot(worker, "orphan", T0, jobs_per_task=5)
    assert store.reserve_slot(store.get_worker("arn:w"), "running", T0, jobs_per_task=5)
    store.put_worker(
        WorkerRecord(
            task_arn="arn:w", status=WorkerStatus.READY, capacity=3, heartbeat_at=T0, jobs={"running": "J"}
        )
    )

    assert store.reap_slot("arn:w", "orphan", T0 + 1, 4) is False, "another reservation than the one judged"
    assert store.reap_slot("arn:w", "running", T0, 4) is False, "its job runs there"
    assert store.reap_slot("arn:w", "orphan", T0, 4) is True
    assert store.reap_slot("arn:w", "orphan", T0, 4) is False, "once"
    assert store.reap_slot("arn:unknown", "orphan", T0, 4) is False
    after = store.get_worker("arn:w")
    assert after is not None and after.reserved == {"running": T0} and after.assigned == 1


def test_a_counted_job_id_is_stored_with_its_count_and_a_concurrent_count_loses(
    store: InMemoryStore | DynamoDBStore,
) -> None:
    """The sweep and a worker's report (or two sweeps) count a dead job once: the job id is
    written with the count under the room's version, so the second writer must re-read."""
    created = store.create(Room(name="room-1", sid="RM_1", created_at=T0))
    counted = created.model_copy(update={"crashes": (T0,), "failed_jobs": ("AJ_1",)})

    saved = store.save(counted, expected_version=created.version)
    with pytest.raises(VersionConflict):
        store.save(
            created.model_copy(update={"crashes": (T0 + 1,), "failed_jobs": ("AJ_1",)}), created.version
        )

    assert store.get("room-1") == saved
    assert saved.failed_jobs == ("AJ_1",) and saved.crashes == (T0,)
