"""A worker's ``JobStarted`` reaches the control plane before LiveKit lists the job (on the real
server most do, issue 19). The task holding the room's slot is believed as it reports (SQS names
the sender): the room has its job at once, with no LiveKit call. Any other task's report would
move the agent, so LiveKit must confirm it first."""

from __future__ import annotations

from control_plane.worker_protocol import JobStarted
from tests.harness import TwinStack


def report_before_listing(stack: TwinStack, room: str, task_arn: str, job_id: str, **extra: str) -> None:
    """The worker reports the job; LiveKit's dispatch does not list it yet."""
    stack.controller.handle_timer(
        JobStarted(task_arn=task_arn, room=room, room_sid=stack.room(room).sid, job_id=job_id, **extra)
    )


def test_the_slot_holders_report_is_recorded_at_once_without_a_listing() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    task = stack.worker_becomes_ready()
    listings = stack.livekit.calls["list_dispatches"]

    report_before_listing(stack, "room-1", task, "AJ_EARLY")

    agent = stack.room("room-1").agent
    assert agent is not None and (agent.task_arn, agent.job_id) == (task, "AJ_EARLY")
    assert stack.livekit.calls["list_dispatches"] == listings, "no listing for the slot holder"
    assert stack.metrics.count_for("JobReportsUnconfirmed") == 0


def test_another_tasks_report_is_checked_with_livekit_and_refused_while_unlisted() -> None:
    stack = TwinStack()
    stack.join("PA_1", room="room-1")
    stack.join("PA_2", identity="bob", room="room-2")
    holder = stack.worker_becomes_ready("room-1")
    other = stack.worker_becomes_ready("room-2")
    listings = stack.livekit.calls["list_dispatches"]

    report_before_listing(stack, "room-1", other, "AJ_ELSEWHERE")

    agent = stack.room("room-1").agent
    assert agent is not None and (agent.task_arn, agent.job_id) == (holder, None), "the agent did not move"
    assert stack.livekit.calls["list_dispatches"] == listings + 1
    assert stack.metrics.count_for("JobReportsUnconfirmed") == 1


def test_the_slot_holder_naming_another_dispatch_than_the_recorded_one_is_checked() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    task = stack.worker_becomes_ready()

    report_before_listing(stack, "room-1", task, "AJ_OTHER", dispatch_id="AD_NOT_OURS")

    agent = stack.room("room-1").agent
    assert agent is not None and agent.job_id is None
    assert stack.metrics.count_for("JobReportsUnconfirmed") == 1
