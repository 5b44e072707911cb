"""The warm pool's edges (issue 18): reconnect storms, release races, orphaned reservations,
workers lost before their job, through the real core on twins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from control_plane import reconcile
from control_plane.room import Room
from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus
from tests.harness import POLICY, POOL_POLICY, TwinStack


def warm_stack(warm_tasks: int = 1, **pool: object) -> TwinStack:
    """A stack whose pool launched its warm workers and saw them become ready."""
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=warm_tasks, **pool))  # type: ignore[arg-type]
    stack.controller.capacity.replenish()
    for arn in stack.pool_tasks():
        record = stack.store.get_worker(arn)
        if record is None or record.status is WorkerStatus.STARTING:
            stack.pool_worker_becomes_ready(arn)
    return stack


def test_a_reconnect_storm_of_worker_ready_messages_samples_the_cold_start_once() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=1, adaptive=True))
    stack.controller.capacity.replenish()
    [arn] = stack.pool_tasks()
    stack.advance(40)
    stack.pool_worker_becomes_ready(arn)
    measured = stack.store.pool_demand().cold_start_seconds
    wanted = stack.controller.capacity.replenish().wanted_slots

    # Three hours on, LiveKit restarts: the worker re-registers and re-sends WorkerReady, many times.
    stack.advance(3 * 3600)
    for _ in range(25):
        stack.timers.send(WorkerReady(task_arn=arn), 0)
    stack.run_due_timers()

    assert measured == 40.0
    assert stack.store.pool_demand().cold_start_seconds == measured, "the estimate is unchanged"
    assert stack.controller.capacity.replenish().wanted_slots == wanted, "the pool did not grow"
    assert stack.metrics.count_for("WorkerColdStartSeconds") == 40.0, "one sample"


def _another_room_reserves(stack: TwinStack, arn: str) -> None:
    worker = stack.store.get_worker(arn)
    assert worker is not None
    assert stack.store.reserve_slot(worker, "room-b", stack.clock.now(), jobs_per_task=2)


def _livekit_hands_it_a_job(stack: TwinStack, arn: str) -> None:
    stack.heartbeat(arn, {"room-b": "AJ_9"})


@pytest.mark.parametrize("meanwhile", [_another_room_reserves, _livekit_hands_it_a_job])
def test_a_worker_taken_by_another_room_while_its_room_is_released_is_never_stopped(
    meanwhile: Callable[[TwinStack, str], None],
) -> None:
    stack = warm_stack(warm_tasks=1, jobs_per_task=2)
    [warm] = stack.pool_tasks()
    stack.join("PA_1")
    assert stack.task_of() == warm
    for arn in stack.pool_tasks():
        if not stack.worker_registered(arn):
            stack.pool_worker_becomes_ready(arn)  # the replacement: the pool needs `warm` no more
    release_slot = stack.store.release_slot

    def released_then_taken(
        task_arn: str, room: str, jobs_per_task: int, unassign: bool = False
    ) -> WorkerRecord | None:
        after = release_slot(task_arn, room, jobs_per_task, unassign)
        if room == "room-1":
            meanwhile(stack, task_arn)  # another Lambda, or LiveKit, between the release and the drain
        return after

    stack.store.release_slot = released_then_taken  # type: ignore[method-assign]
    stack.leave("PA_1")
    stack.advance(61)  # grace over: room-1's agent is removed

    assert stack.room().agent is None
    assert stack.runner.tasks[warm].running, "the worker another room took is not SIGTERMed"
    worker = stack.store.get_worker(warm)
    assert worker is not None and not worker.draining
    assert stack.metrics.count_for("WorkerStopsAvoided") == 1


def test_a_released_worker_nobody_took_is_drained_and_stopped() -> None:
    stack = warm_stack(warm_tasks=1, jobs_per_task=2)
    [warm] = stack.pool_tasks()
    stack.join("PA_1")
    stack.job_started("room-1", warm)
    for arn in stack.pool_tasks():
        if not stack.worker_registered(arn):
            stack.pool_worker_becomes_ready(arn)

    stack.leave("PA_1")
    stack.advance(61)

    assert not stack.runner.tasks[warm].running, "its own room's job listed still: ours to end"
    worker = stack.store.get_worker(warm)
    assert worker is not None and worker.draining


def test_a_pool_worker_lost_before_the_rooms_job_is_the_workers_failure_not_the_rooms() -> None:
    stack = warm_stack(warm_tasks=2)
    stack.join("PA_1")
    for _ in range(3):  # three Spot reclaims in a row, each before LiveKit handed over the job
        reserved_on = stack.task_of()
        spare = [arn for arn in stack.pool_tasks() if arn != reserved_on]
        for arn in spare:
            if not stack.worker_registered(arn):
                stack.pool_worker_becomes_ready(arn)
        stack.runner.crash(reserved_on, "SpotInterruption", None)
        stack.ecs_event(reserved_on, "STOPPED", stop_code="SpotInterruption")

        room = stack.room()
        assert room.crashes == () and room.failed_at is None and room.next_launch_at is None
        assert room.agent is not None and room.agent.slot_reserved, "another ready worker, at once"
        assert room.agent.task_arn in spare
        assert len(stack.dispatches()) == 1
    assert stack.metrics.count_for("WorkersLostBeforeJob") == 3
    assert stack.metrics.count_for("AgentCrashes") == 0


def test_a_worker_lost_with_no_other_ready_worker_launches_at_once() -> None:
    stack = warm_stack(warm_tasks=1)
    [warm] = stack.pool_tasks()
    stack.join("PA_1")
    for arn in stack.pool_tasks():  # the replacement the pool launched is still starting
        assert arn == warm or not stack.worker_registered(arn)

    stack.crash()

    room = stack.room()
    assert room.crashes == ()
    assert room.agent is not None and room.agent.task_arn != warm, "capacity asked for now, no backoff"


def test_a_worker_dying_after_the_rooms_job_started_still_counts_as_the_rooms_crash() -> None:
    stack = warm_stack(warm_tasks=1)
    [warm] = stack.pool_tasks()
    stack.join("PA_1")
    stack.job_started("room-1", warm)

    stack.crash()

    assert len(stack.room().crashes) == 1
    assert stack.metrics.count_for("WorkersLostBeforeJob") == 0


def test_a_reservation_whose_room_write_failed_is_reaped_after_the_claim_lease() -> None:
    stack = warm_stack(warm_tasks=1)
    [warm] = stack.pool_tasks()
    save = stack.store.save

    def throttled_when_recording_the_slot(room: Room, expected_version: int) -> Room:
        if room.agent is not None and room.agent.slot_reserved:
            raise RuntimeError("ProvisionedThroughputExceededException (injected)")
        return save(room, expected_version)

    stack.store.save = throttled_when_recording_the_slot  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        stack.join("PA_1")
    stack.store.save = save  # type: ignore[method-assign]
    worker = stack.store.get_worker(warm)
    assert worker is not None and "room-1" in worker.reserved, "the slot was taken, its record not"
    assert not stack.room().agent or not stack.room().agent.slot_reserved

    stack.sweep()  # within the lease: a reservation being recorded right now is left alone
    assert "room-1" in stack.store.get_worker(warm).reserved
    stack.advance(POLICY.claim_lease_seconds)
    stack.sweep()

    room = stack.room()
    assert room.agent is not None and room.agent.slot_reserved, "the room took a slot again"
    assert stack.store.get_worker(warm).reserved.keys() <= {"room-1"}
    assert stack.metrics.count_for("OrphanedSlotsReaped") == 1
    for record in stack.store.live_workers():
        for name in record.reserved:
            assert reconcile.holds_slot_on(stack.store.get(name), record.task_arn), (
                "no reservation is orphaned"
            )


def test_a_reservation_its_room_points_back_to_is_never_reaped() -> None:
    stack = warm_stack(warm_tasks=1)
    stack.join("PA_1")
    arn = stack.task_of()
    stack.advance(3600)
    stack.sweep()

    assert "room-1" in stack.store.get_worker(arn).reserved
    assert stack.metrics.count_for("OrphanedSlotsReaped") == 0


def test_twenty_first_joins_at_once_launch_at_most_max_tasks() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, max_tasks=5))
    rooms = [f"room-{i:02}" for i in range(20)]
    listed_together = threading.Barrier(len(rooms), timeout=10)
    first_listing = threading.local()
    live_workers = stack.store.live_workers

    def every_lambda_lists_before_any_launches() -> list[WorkerRecord]:
        workers = list(live_workers())
        if not getattr(first_listing, "done", False):
            first_listing.done = True
            listed_together.wait()
        return workers

    stack.store.live_workers = every_lambda_lists_before_any_launches  # type: ignore[method-assign]
    with ThreadPoolExecutor(len(rooms)) as lambdas:
        list(lambdas.map(lambda room: stack.join(f"PA_{room}", room=room), rooms))

    assert len(stack.runner.running()) == 5, "MAX_TASKS is a hard cap"
    assert set(stack.tasks.live()) == {task.arn for task in stack.runner.running()}
    held_back = [room for room in rooms if stack.room(room).agent.task_arn is None]
    assert len(held_back) == 15 and all(stack.room(room).agent.launch_queued for room in held_back)
    assert stack.metrics.count_for("PoolExhausted") >= 15


def test_a_stopped_task_frees_its_place_and_a_lost_event_is_healed_by_the_sweep() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, max_tasks=2))
    stack.join("PA_1", room="room-a")
    stack.join("PA_2", room="room-b")
    stack.join("PA_3", room="room-c")
    assert stack.room("room-c").agent.task_arn is None, "held back at the cap"

    crashed = stack.crash("room-a")
    assert crashed not in stack.tasks.live(), "its STOPPED event freed its place"
    lost = stack.task_of("room-b")
    stack.runner.crash(lost)  # this one's STOPPED event never arrives
    assert lost in stack.tasks.live()
    stack.advance(130)
    stack.sweep()

    assert lost not in stack.tasks.live(), "the sweep's heal forgot the task ECS no longer lists"
    stack.advance(20)  # room-c's queued launch comes due

    running = {task.arn for task in stack.runner.running()}
    assert set(stack.tasks.live()) == running and len(running) == 2
    assert stack.room("room-c").agent.task_arn in running, "the place the lost event held is free again"


def test_a_pool_worker_that_hangs_before_the_rooms_job_is_replaced_without_a_crash() -> None:
    stack = warm_stack(warm_tasks=2)
    stack.join("PA_1")
    hung = stack.task_of()
    for arn in stack.pool_tasks():
        if not stack.worker_registered(arn):
            stack.pool_worker_becomes_ready(arn)
    stack.silence(hung)
    stack.advance(60)

    stack.sweep()  # stops it as stale_heartbeat

    room = stack.room()
    assert not stack.runner.tasks[hung].running
    assert room.crashes == () and room.agent is not None and room.agent.task_arn != hung
    assert stack.metrics.count_for("WorkersLostBeforeJob") == 1
