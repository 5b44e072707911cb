"""ECS task state changes on in-memory twins: worker records, crashes, respawns and crash loops."""

from __future__ import annotations

import pytest

from control_plane.room import RoomState
from control_plane.task_events import TaskEventOutcome
from control_plane.worker_protocol import Respawn, WorkerStatus
from tests.harness import TwinStack


@pytest.fixture
def stack() -> TwinStack:
    return TwinStack()


def active_room(stack: TwinStack, sid: str = "PA_1") -> str:
    stack.join(sid)
    return stack.worker_becomes_ready()


def respawns(stack: TwinStack) -> list[float]:
    return [s.due_at - stack.clock.now() for s in stack.timers.sent if isinstance(s.message, Respawn)]


# --- worker records ------------------------------------------------------------------------------


def test_running_and_stopped_events_update_the_worker_record(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.task_of()

    assert stack.ecs_event(arn, "RUNNING", version=2) is TaskEventOutcome.RECORDED
    record = stack.store.get_worker(arn)
    assert (record.status, record.last_status, record.ecs_version) == (WorkerStatus.STARTING, "RUNNING", 2)
    assert record.launched_for == "room-1"

    stack.runner.stop(arn, "test")
    assert stack.ecs_event(arn, "STOPPED", version=4, stop_code="UserInitiated") is TaskEventOutcome.RECORDED
    record = stack.store.get_worker(arn)
    assert (record.status, record.stop_code) == (WorkerStatus.STOPPED, "UserInitiated")
    assert arn not in {w.task_arn for w in stack.store.live_workers()}


def test_older_event_arriving_late_is_ignored(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.task_of()
    stack.runner.stop(arn, "test")
    stack.ecs_event(arn, "STOPPED", version=4, stop_code="UserInitiated")

    outcome = stack.ecs_event(arn, "RUNNING", version=2)

    assert outcome is TaskEventOutcome.STALE
    assert stack.store.get_worker(arn).status is WorkerStatus.STOPPED


def test_event_does_not_overwrite_what_the_worker_reports(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.heartbeat(arn, jobs={"room-1": "AJ_1"})
    before = stack.store.get_worker(arn)

    stack.ecs_event(arn, "RUNNING", version=3)

    after = stack.store.get_worker(arn)
    assert (after.status, after.jobs, after.heartbeat_at) == (before.status, before.jobs, before.heartbeat_at)
    assert after.ecs_version == 3


def test_events_for_tasks_we_did_not_start_are_ignored(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.runner.crash(arn)

    outcome = stack.ecs_event(arn, "STOPPED", started_by="ecs-svc/123", stop_code="EssentialContainerExited")

    assert outcome is TaskEventOutcome.IGNORED
    assert stack.room().agent.task_arn == arn


# --- crashes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_code", "exit_code"),
    [("EssentialContainerExited", 1), ("TaskFailedToStart", None), ("SpotInterruption", 143)],
)
def test_crashed_agent_is_respawned_after_a_backoff(
    stack: TwinStack, stop_code: str, exit_code: int | None
) -> None:
    active_room(stack)
    old_dispatch = stack.room().agent.dispatch_id

    crashed = stack.crash(stop_code=stop_code, exit_code=exit_code)

    room = stack.room()
    assert room.agent is None, "the dead agent is removed"
    assert stack.livekit.get_dispatch("room-1", old_dispatch) is None
    assert len(room.crashes) == 1
    assert respawns(stack) == [10.0]
    assert stack.runner.running() == [], "no new task before the backoff"
    assert stack.metrics.counts["AgentCrashes"] == 1

    stack.advance(10)

    [fresh] = stack.runner.running()
    assert fresh.arn != crashed and fresh.room == "room-1"
    assert stack.room().state is RoomState.STARTING


def test_backoff_doubles_with_each_crash(stack: TwinStack) -> None:
    active_room(stack)
    stack.crash()
    stack.advance(10)
    stack.worker_becomes_ready()

    stack.crash()

    assert respawns(stack) == [20.0]


def test_crash_while_starting_is_counted_even_before_the_launch_was_recorded(stack: TwinStack) -> None:
    stack.join("PA_1")
    room = stack.room()
    arn = room.agent.task_arn
    stack.store.save(
        room.model_copy(update={"agent": room.agent.model_copy(update={"task_arn": None})}), room.version
    )
    stack.runner.crash(arn, "TaskFailedToStart", exit_code=None)

    stack.ecs_event(arn, "STOPPED", stop_code="TaskFailedToStart")

    assert len(stack.room().crashes) == 1
    assert stack.room().agent is None


def test_duplicate_stopped_event_counts_one_crash(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.runner.crash(arn)
    stack.ecs_event(arn, "STOPPED", version=5, stop_code="EssentialContainerExited", exit_code=1)

    stack.ecs_event(arn, "STOPPED", version=5, stop_code="EssentialContainerExited", exit_code=1)

    assert len(stack.room().crashes) == 1
    assert stack.metrics.counts["AgentCrashes"] == 1


def test_our_own_stop_is_not_a_crash(stack: TwinStack) -> None:
    """An operator's StopTask (UserInitiated): the humans get a new agent at once, no backoff."""
    arn = active_room(stack)
    stack.runner.stop(arn, "operator")

    stack.ecs_event(arn, "STOPPED", stop_code="UserInitiated", exit_code=143)

    room = stack.room()
    assert room.crashes == ()
    assert respawns(stack) == []
    [fresh] = stack.runner.running()
    assert fresh.arn != arn


def test_stop_after_the_room_closed_changes_nothing(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.leave("PA_1")
    stack.advance(61)
    closed = stack.room()

    stack.ecs_event(arn, "STOPPED", stop_code="UserInitiated", exit_code=143)

    assert stack.room() == closed
    assert stack.runner.running() == []


def test_worker_that_drains_and_exits_as_asked_is_not_a_crash(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.store.mark_draining(arn)
    stack.runner.crash(arn, "EssentialContainerExited", exit_code=0)

    stack.ecs_event(arn, "STOPPED", stop_code="EssentialContainerExited", exit_code=0)

    assert stack.room().crashes == ()
    assert len(stack.runner.running()) == 1, "its humans get a new agent"


def test_crash_during_grace_closes_the_room_without_a_new_agent(stack: TwinStack) -> None:
    active_room(stack)
    stack.leave("PA_1")

    stack.crash()

    assert stack.room().state is RoomState.CLOSED
    assert stack.room().crashes == ()
    stack.advance(120)
    assert stack.runner.running() == []


# --- crash loops ---------------------------------------------------------------------------------


def crash_loop(stack: TwinStack, crashes: int, every: float = 30) -> None:
    active_room(stack)
    for number in range(crashes):
        stack.crash()
        if number < crashes - 1:
            stack.advance(every)
            stack.worker_becomes_ready()


def test_third_crash_in_ten_minutes_marks_the_room_failed(stack: TwinStack) -> None:
    crash_loop(stack, 3)

    room = stack.room()
    assert room.state is RoomState.FAILED
    assert stack.metrics.counts["CrashLoops"] == 1
    assert respawns(stack) == [], "no respawn after the limit"

    stack.advance(3600)
    stack.sweep()

    assert stack.runner.running() == []
    assert stack.room().state is RoomState.FAILED
    assert stack.runner.run_task_calls == 3


def test_crashes_spread_beyond_the_window_do_not_fail_the_room(stack: TwinStack) -> None:
    crash_loop(stack, 3, every=301)

    assert stack.room().state is not RoomState.FAILED
    assert len(stack.room().crashes) == 2, "the first one left the window"


def test_new_human_joining_a_failed_room_gets_a_fresh_agent(stack: TwinStack) -> None:
    crash_loop(stack, 3)

    stack.join("PA_2", identity="bob")

    room = stack.room()
    assert room.state is RoomState.STARTING
    assert room.crashes == ()
    assert len(stack.runner.running()) == 1


def test_replayed_join_does_not_clear_a_failure(stack: TwinStack) -> None:
    crash_loop(stack, 3)

    stack.deliver("participant_joined", sid="PA_1")  # PA_1 has been there all along

    assert stack.room().state is RoomState.FAILED
    assert stack.runner.running() == []


def test_failed_room_closes_when_its_humans_leave(stack: TwinStack) -> None:
    crash_loop(stack, 3)

    stack.leave("PA_1")

    room = stack.room()
    assert room.state is RoomState.CLOSED
    assert room.failed_at is None
    assert stack.dispatches() == []
