"""The warm pool through the real core on twins: slots, launches, scale-in, recycling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from control_plane.adapters.memory.launch_limiter import InMemoryLaunchLimiter
from control_plane.launch_limit import LaunchLimits
from control_plane.ports import LiveKitUnavailable
from control_plane.room import RoomState
from control_plane.worker_protocol import WorkerStatus
from tests.harness import POOL_POLICY, TwinStack


def warm_stack(warm_tasks: int = 1, **pool: object) -> TwinStack:
    """A stack whose pool launched its warm workers and saw them become ready."""
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=warm_tasks, **pool))  # type: ignore[arg-type]
    stack.controller.capacity.replenish()
    pool_workers_become_ready(stack)
    return stack


def pool_workers_become_ready(stack: TwinStack) -> None:
    for arn in stack.pool_tasks():
        record = stack.store.get_worker(arn)
        if record is None or record.status is WorkerStatus.STARTING:
            stack.pool_worker_becomes_ready(arn)


def test_with_no_warm_tasks_and_no_traffic_nothing_runs() -> None:
    stack = TwinStack()

    stack.sweep()
    stack.advance(600)
    stack.sweep()

    assert stack.runner.running() == []


def test_a_warm_worker_takes_the_first_human_at_once_and_the_pool_is_replenished() -> None:
    stack = warm_stack(warm_tasks=1)
    [warm] = stack.pool_tasks()

    stack.join("PA_1")

    room = stack.room()
    assert room.agent is not None and room.agent.task_arn == warm and room.agent.slot_reserved
    assert room.state is RoomState.ACTIVE, "dispatched in the same webhook: no cold start"
    assert len(stack.dispatches()) == 1
    assert stack.metrics.count_for("JoinToDispatchSeconds") == 0.0
    [replacement] = [arn for arn in stack.pool_tasks() if arn != warm]
    assert stack.store.get_worker(replacement).status is WorkerStatus.STARTING, "one warm slot kept"


def test_a_warm_join_is_dispatched_before_the_pool_launches_the_workers_replacement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The human is waiting for the dispatch; the pool's refill (RunTask, ~1 s on ECS and
    0.8 s of a warm join in the e2e tier) comes after it, in the same invocation."""
    stack = warm_stack(warm_tasks=1)
    calls: list[str] = []
    launch, create_dispatch = stack.runner.launch, stack.livekit.create_dispatch

    def launched(*args: object, **kwargs: object) -> object:
        calls.append("RunTask")
        return launch(*args, **kwargs)  # type: ignore[arg-type]

    def dispatched(*args: object, **kwargs: object) -> object:
        calls.append("CreateDispatch")
        return create_dispatch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stack.runner, "launch", launched)
    monkeypatch.setattr(stack.livekit, "create_dispatch", dispatched)

    stack.join("PA_1")

    assert calls == ["CreateDispatch", "RunTask"]
    assert len(stack.pool_tasks()) == 2, "the pool still refilled"


def test_two_rooms_racing_for_the_last_free_slot_one_takes_it_the_other_launches() -> None:
    stack = warm_stack(warm_tasks=1)
    [warm] = stack.pool_tasks()
    worker = stack.store.get_worker(warm)
    assert worker is not None

    # Both read the same free worker; the conditional writes decide.
    first = stack.store.reserve_slot(worker, "room-a", stack.clock.now(), jobs_per_task=1)
    second = stack.store.reserve_slot(worker, "room-b", stack.clock.now(), jobs_per_task=1)
    assert (first, second) == (True, False)
    stack.store.release_slot(warm, "room-a", 1, unassign=True)

    stack.join("PA_1", room="room-a")
    stack.join("PA_2", identity="bob", room="room-b")

    a, b = stack.room("room-a").agent, stack.room("room-b").agent
    assert a is not None and a.slot_reserved and a.task_arn == warm
    assert b is not None and not b.slot_reserved and b.task_arn is not None, "launched its own task"
    assert stack.runner.tasks[b.task_arn].room == "room-b"
    assert stack.store.get_worker(warm).reserved.keys() == {"room-a"}
    assert stack.store.waiting_rooms()[0][0] == "room-b"


def test_a_slot_freed_by_another_room_is_taken_before_the_own_cold_start_ends() -> None:
    stack = warm_stack(warm_tasks=0, jobs_per_task=2)  # room-a's worker may take another room
    stack.join("PA_1", room="room-a")
    stack.worker_becomes_ready("room-a")
    stack.join("PA_2", identity="bob", room="room-b")  # no free slot: launches its own task
    own = stack.task_of("room-b")

    stack.leave("PA_1", room="room-a")
    stack.advance(40)
    stack.heartbeat(stack.task_of("room-a"))  # the worker heartbeats every 15 s
    stack.advance(21)  # room-a's grace ends: its slot frees

    b = stack.room("room-b").agent
    assert b is not None and b.slot_reserved and b.task_arn != own, "took the freed slot"
    assert stack.room("room-b").state is RoomState.ACTIVE


def test_a_worker_crash_with_a_job_maps_to_the_room_of_that_job() -> None:
    stack = warm_stack(warm_tasks=2)
    first, second = stack.pool_tasks()[:2]
    stack.join("PA_1", room="room-a")
    reserved_on = stack.task_of("room-a")
    # LiveKit ran room-a's job on the other worker: the slot follows the job.
    ran_on = second if reserved_on == first else first
    stack.job_started("room-a", ran_on)
    assert stack.task_of("room-a") == ran_on
    assert "room-a" in stack.store.get_worker(ran_on).reserved
    assert "room-a" not in stack.store.get_worker(reserved_on).reserved

    stack.runner.crash(ran_on)
    stack.ecs_event(ran_on, "STOPPED", stop_code="EssentialContainerExited", exit_code=1)

    room = stack.room("room-a")
    assert room.crashes, "the crash counted against the room whose job died"
    assert room.agent is None or room.agent.task_arn != ran_on


def test_scale_in_never_stops_a_worker_with_a_job() -> None:
    stack = warm_stack(warm_tasks=1)
    stack.join("PA_1")
    busy = stack.task_of()
    stack.job_started("room-1", busy)
    stack.runner.launch(None, "more-than-wanted", 3)
    pool_workers_become_ready(stack)

    for _ in range(3):
        stack.sweep()
        stack.advance(60)

    assert stack.runner.tasks[busy].running, "the worker with a job runs on"
    assert not stack.store.get_worker(busy).draining
    live = [arn for arn in stack.pool_tasks() if arn != busy]
    assert len(live) == 1, "idle surplus drained (then stopped), one warm worker kept"


def test_a_recycled_task_is_replaced_and_stopped_after_its_room() -> None:
    stack = warm_stack(warm_tasks=1, jobs_per_task=1)
    [warm] = stack.pool_tasks()
    stack.join("PA_1")
    stack.job_started("room-1", warm)
    pool_workers_become_ready(stack)

    stack.leave("PA_1")
    stack.advance(61)

    assert not stack.runner.tasks[warm].running, "spent after one room: stopped with it"
    ready = [
        arn
        for arn in stack.pool_tasks()
        if stack.store.get_worker(arn).status is WorkerStatus.READY
        and not stack.store.get_worker(arn).draining
    ]
    assert len(ready) == 1, "the pool replaced it"


def test_pool_exhausted_rooms_wait_and_are_counted() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, max_tasks=1))
    stack.join("PA_1", room="room-a")
    stack.join("PA_2", identity="bob", room="room-b")

    b = stack.room("room-b").agent
    assert b is not None and b.launch_queued and b.task_arn is None
    assert stack.metrics.count_for("PoolExhausted") >= 1
    assert len(stack.runner.running()) == 1


def test_a_launch_storm_queues_behind_the_limiter_instead_of_failing() -> None:
    limiter = InMemoryLaunchLimiter(LaunchLimits(share=1.0))
    stack = TwinStack(limiter=limiter, pool=replace(POOL_POLICY, max_tasks=2000))

    for number in range(300):
        stack.join(f"PA_{number}", identity=f"h{number}", room=f"room-{number}")
    queued = [n for n in range(300) if stack.room(f"room-{n}").agent.task_arn is None]  # type: ignore[union-attr]
    assert len(queued) > 0, "the burst ran out"
    assert stack.runner.calls["RunTask"] <= 20, "never more RunTask calls than the call bucket holds"

    stack.advance(30)

    launched = [n for n in range(300) if stack.room(f"room-{n}").agent.task_arn is not None]  # type: ignore[union-attr]
    assert len(launched) == 300, "every queued room launched once its turn came"
    assert stack.metrics.count_for("TaskLaunchFailures") == 0


@pytest.mark.parametrize("hour, floor", [(3, 0), (9, 2)])
def test_a_schedule_floor_keeps_workers_warm_in_its_window(hour: int, floor: int) -> None:
    from control_plane.pool import parse_schedule

    stack = TwinStack(pool=replace(POOL_POLICY, schedule=parse_schedule("08:00-18:00=2")))
    day = stack.clock.now() - stack.clock.now() % 86400
    stack.clock.advance(day + hour * 3600 - stack.clock.now())

    stack.controller.capacity.replenish()

    assert len(stack.pool_tasks()) == floor


def test_when_livekit_runs_a_job_on_a_worker_another_room_reserved_that_room_takes_the_vacated_slot() -> None:
    stack = warm_stack(warm_tasks=2)
    for name in ("room-a", "room-b", "room-c"):
        stack.livekit.open_room(name, departure_timeout=70)
    stack.join("PA_1", room="room-a")
    a_on = stack.task_of("room-a")
    stack.livekit.set_down(True)  # B's slot is reserved, its dispatch not made yet
    with pytest.raises(LiveKitUnavailable):
        stack.join("PA_2", identity="bob", room="room-b")
    stack.livekit.set_down(False)
    b_on = stack.task_of("room-b")

    stack.job_started("room-a", b_on)  # LiveKit ran A's job on the worker B reserved
    stack.join("PA_3", identity="carol", room="room-c")

    assert stack.task_of("room-a") == b_on
    assert stack.task_of("room-b") == a_on, "B took the slot A vacated"
    counted = sum(len(stack.store.get_worker(arn).rooms()) for arn in (a_on, b_on))
    assert counted == 2, "two slots, two rooms counting on them"
    assert stack.task_of("room-c") not in (a_on, b_on), "C found no slot and launched"


def test_a_room_whose_own_task_went_to_another_rooms_job_launches_again() -> None:
    stack = TwinStack()
    stack.join("PA_1", room="room-a")
    stack.join("PA_2", identity="bob", room="room-b")
    own_a, own_b = stack.task_of("room-a"), stack.task_of("room-b")
    stack.leave("PA_1", room="room-a")  # A's human steps away: A keeps its agent, in grace
    stack.worker_becomes_ready("room-a")
    assert not stack.room("room-a").agent.slot_reserved  # type: ignore[union-attr]
    stack.worker_becomes_ready("room-b")
    stack.job_started("room-b", own_a)  # LiveKit ran B's job on A's task; B's own is free now
    stack.join("PA_3", identity="carol", room="room-c")  # C takes it

    stack.join("PA_4", room="room-a")  # A's human is back within grace: no slot is free

    agent = stack.room("room-a").agent
    assert agent is not None and agent.task_arn not in (own_a, own_b), "A launched a task again"
    assert stack.runner.tasks[agent.task_arn].room == "room-a"
    assert stack.task_of("room-b") == own_a and stack.task_of("room-c") == own_b
