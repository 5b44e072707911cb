"""RunTask outcomes on the twins: a refusal backs off with a new token; an unknown outcome
keeps its token, so the retry finds the task ECS may have started instead of starting another."""

from __future__ import annotations

from control_plane.room import RoomState
from tests.harness import TwinStack


def test_a_launch_whose_reply_was_lost_is_found_by_its_token_not_launched_twice() -> None:
    stack = TwinStack()
    stack.runner.lose_next_launch_replies = 1

    stack.join("PA_1")

    room = stack.room()
    assert room.agent is not None and room.agent.task_arn is None, "the outcome is unknown"
    token = room.agent.launch_token
    assert stack.metrics.counts["TaskLaunchOutcomeUnknown"] == 1
    assert len(stack.runner.running()) == 1, "ECS did start it"

    stack.advance(10)  # the respawn timer

    room = stack.room()
    assert room.agent is not None and room.agent.launch_token == token
    [task] = stack.runner.running()
    assert room.agent.task_arn == task.arn
    assert stack.runner.run_task_calls == 1, "found by its token, not launched again"
    stack.worker_becomes_ready()
    assert stack.room().state is RoomState.ACTIVE and len(stack.dispatches()) == 1


def test_a_refused_launch_backs_off_and_retries_with_a_new_token() -> None:
    stack = TwinStack()
    stack.runner.fail_next_launches = 1

    stack.join("PA_1")

    assert stack.room().agent is None and stack.runner.running() == []
    stack.advance(10)
    room = stack.room()
    assert room.agent is not None and room.agent.task_arn is not None
    assert stack.runner.run_task_calls == 2 and len(stack.runner.running()) == 1
