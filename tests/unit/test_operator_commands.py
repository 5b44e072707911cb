"""What operators can do to a room through the API: force a close, reset a crash loop
(RoomController.force_close / reset_failed, reconcile.force_stop, room.clear_failure)."""

from __future__ import annotations

from control_plane.reconcile import RemoveAgent, force_stop
from control_plane.room import Agent, Grace, Room, RoomState, clear_failure
from tests.harness import TwinStack


def test_force_stop_claims_the_stop_and_drops_reservations() -> None:
    agent = Agent(
        launch_token="t", launch_claimed_at=0.0, room_sid="RM_1", task_arn="arn:t", dispatch_id="AD_1"
    )
    room = Room(
        name="r", sid="RM_1", agent=agent, grace=Grace(generation=1, deadline=9.0), expected={"a": 50.0}
    )

    decision = force_stop(room, 5.0)

    assert decision is not None
    assert decision.effects == (RemoveAgent("arn:t", "AD_1"),)
    assert decision.room.stop_requested_at == 5.0
    assert decision.room.grace is None and decision.room.expected == {}


def test_force_stop_does_nothing_without_an_agent_or_while_stopping() -> None:
    agent = Agent(launch_token="t", launch_claimed_at=0.0, room_sid="RM_1")
    assert force_stop(Room(name="r", sid="RM_1"), 5.0) is None
    assert force_stop(Room(name="r", sid="RM_1", agent=agent, stop_requested_at=4.0), 5.0) is None


def test_clear_failure_forgets_crashes_and_backoff_and_leaves_healthy_rooms_alone() -> None:
    failed = Room(name="r", failed_at=3.0, crashes=(1.0, 2.0, 3.0), next_launch_at=40.0, launch_failures=2)

    cleared = clear_failure(failed)

    assert (cleared.failed_at, cleared.crashes, cleared.next_launch_at, cleared.launch_failures) == (
        None,
        (),
        None,
        0,
    )
    healthy = Room(name="r")
    assert clear_failure(healthy) is healthy


def test_close_of_an_empty_lingering_room_stops_the_agent_now() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")

    after = stack.controller.force_close("room-1")

    assert after is not None and after.state is RoomState.CLOSED
    assert stack.runner.running() == [] and stack.dispatches() == []
    assert stack.metrics.counts["AgentsClosedByOperator"] == 1


def test_close_is_idempotent_and_unknown_rooms_are_none() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    stack.leave("PA_1")
    stack.controller.force_close("room-1")

    again = stack.controller.force_close("room-1")

    assert again is not None and again.state is RoomState.CLOSED
    assert stack.metrics.counts["AgentsClosedByOperator"] == 1
    assert stack.controller.force_close("nowhere") is None


def test_humans_still_there_get_a_fresh_agent_after_a_close() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    first = stack.worker_becomes_ready()

    after = stack.controller.force_close("room-1")

    assert first not in {task.arn for task in stack.runner.running()}
    assert after is not None and after.agent is not None and after.agent.task_arn != first
    assert stack.runner.run_task_calls == 2 and len(stack.runner.running()) == 1


def test_reset_lets_the_humans_of_a_failed_room_get_an_agent() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    stack.crash_loop()
    assert stack.room().state is RoomState.FAILED
    launches = stack.runner.run_task_calls

    after = stack.controller.reset_failed("room-1")

    assert after is not None and after.state is RoomState.STARTING
    assert stack.runner.run_task_calls == launches + 1
    assert stack.controller.reset_failed("nowhere") is None
