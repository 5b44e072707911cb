"""A slot decision reads the same few worker items with 10 live workers or 1,000.

Before the slot index every decision listed every live worker (N items, N² over N rooms). The
twin counts the worker items each read returns (``InMemoryStore.worker_items_read``): a first
join's decision (its room's own task, a shard of the index, the reserve) and the whole join
with the pool's top-up must not grow with the busy workers around it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from control_plane.ports import ObservedTaskState
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from tests.harness import POOL_POLICY, TwinStack

JOBS_PER_TASK = 4


def stack_with(busy: int, warm_tasks: int) -> TwinStack:
    """A pool of ``warm_tasks`` ready workers beside ``busy`` workers with every slot taken."""
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=warm_tasks, jobs_per_task=JOBS_PER_TASK))
    stack.controller.capacity.replenish()
    for arn in stack.pool_tasks():
        stack.pool_worker_becomes_ready(arn)
    store, now = stack.store, stack.clock.now()
    for number in range(busy):
        arn = f"arn:aws:ecs:us-east-1:123456789012:task/agents/busy{number:05}"
        store.record_task_state(ObservedTaskState(arn, version=1, last_status="RUNNING", seen_at=now))
        store.put_worker(WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=now))
        ready = store.mark_ready(arn, now, JOBS_PER_TASK)
        assert ready is not None and store.reserve_slot(ready, f"busy-room-{number}", now, JOBS_PER_TASK)
    return stack


def decision_items(stack: TwinStack, room: str) -> int:
    """Worker items one decision reads: the room's own task (none yet), candidates, reserve."""
    capacity, store = stack.controller.capacity, stack.store
    before = store.worker_items_read
    listed = capacity.candidates(room, capacity.own_task(None))
    assert capacity.take_slot(room, None, listed) is not None
    return store.worker_items_read - before


def join_items(stack: TwinStack, room: str) -> int:
    """Worker items a first join reads end to end: the decision, the reserve, the pool top-up."""
    before = stack.store.worker_items_read
    stack.join("PA_1", room=room)
    return stack.store.worker_items_read - before


@pytest.mark.parametrize("warm_tasks", [2, 5])
def test_a_decision_with_a_warm_pool_reads_at_most_three_worker_items_at_any_size(warm_tasks: int) -> None:
    small, large = stack_with(10, warm_tasks), stack_with(1000, warm_tasks)

    read = [decision_items(small, "room-a"), decision_items(large, "room-a")]

    assert read[0] == read[1] and read[0] <= 3, read


def test_a_first_join_reads_as_many_worker_items_beside_1000_busy_workers_as_beside_10() -> None:
    small, large = stack_with(10, 2), stack_with(1000, 2)

    read = [join_items(small, "room-a"), join_items(large, "room-a")]

    for stack in (small, large):
        agent = stack.room("room-a").agent
        assert agent is not None and agent.slot_reserved, "the warm slot was taken"
    assert read[0] == read[1], read
    assert len(large.store.live_workers()) > 1000, "the listing a decision used to read"


def test_a_first_join_with_no_free_slot_reads_only_the_task_it_launched_at_any_size() -> None:
    small, large = stack_with(10, 0), stack_with(1000, 0)

    read = [join_items(small, "room-a"), join_items(large, "room-a")]

    for stack in (small, large):
        agent = stack.room("room-a").agent
        assert agent is not None and agent.task_arn is not None and not agent.slot_reserved, "launched"
    assert read == [1, 1], read


def test_a_worker_whose_ready_message_was_lost_is_offered_to_rooms_after_one_sweep() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=1))
    stack.controller.capacity.replenish()
    [arn] = stack.pool_tasks()
    # The worker's own write says ready; its worker_ready message never arrives.
    stack.store.put_worker(
        WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=stack.clock.now())
    )
    assert not stack.controller.capacity.slot_open("room-1"), (
        "filed as starting: its own write cannot move it"
    )

    stack.sweep()

    assert stack.metrics.count_for("SlotIndexRefiled") == 1
    assert [w.task_arn for w in stack.controller.capacity.candidates("room-1")] == [arn]
