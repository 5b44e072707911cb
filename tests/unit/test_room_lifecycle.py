"""The room lifecycle end to end on in-memory twins with a virtual clock."""

from __future__ import annotations

import pytest

from control_plane.ports import LiveKitUnavailable
from control_plane.room import RoomState
from control_plane.worker_protocol import GraceExpired
from tests.harness import AGENT, EGRESS, SIP, TwinStack
from tests.reliability.faults import Fault, TwinFaults


@pytest.fixture
def stack() -> TwinStack:
    return TwinStack()


def test_first_human_launches_one_task_and_dispatches_only_when_worker_ready(stack: TwinStack) -> None:
    stack.join("PA_1")

    assert stack.runner.run_task_calls == 1
    assert stack.room().state is RoomState.STARTING
    assert stack.dispatches() == [], "no dispatch before a worker is ready (it would never get a job)"

    stack.worker_becomes_ready()

    [dispatch] = stack.dispatches()
    assert dispatch.has_running_job
    assert stack.room().state is RoomState.ACTIVE
    assert stack.room().agent.dispatch_id == dispatch.dispatch_id


def test_second_human_reuses_the_agent(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.join("PA_2", identity="bob")

    assert stack.runner.run_task_calls == 1
    assert len(stack.dispatches()) == 1
    assert set(stack.room().humans) == {"PA_1", "PA_2"}


@pytest.mark.parametrize("kind", [AGENT, EGRESS])
def test_agents_and_egress_do_not_start_an_agent(stack: TwinStack, kind: int) -> None:
    outcome = stack.deliver("participant_joined", sid="PA_bot", identity="bot", participant_kind=kind)

    assert outcome == "ignored"
    assert stack.runner.run_task_calls == 0


def test_sip_caller_counts_as_human(stack: TwinStack) -> None:
    stack.deliver("participant_joined", sid="PA_phone", identity="+15550100", participant_kind=SIP)

    assert stack.runner.run_task_calls == 1
    assert "PA_phone" in stack.room().humans


@pytest.mark.parametrize("order", ["join_then_leave", "leave_then_join"])
def test_refresh_keeps_the_agent_without_a_second_one(stack: TwinStack, order: str) -> None:
    stack.join("PA_old")
    stack.worker_becomes_ready()
    first_dispatch = stack.room().agent.dispatch_id

    if order == "join_then_leave":
        stack.join("PA_new")
        stack.leave("PA_old")
    else:
        stack.leave("PA_old")
        stack.join("PA_new")
    stack.advance(120)

    room = stack.room()
    assert set(room.humans) == {"PA_new"}
    assert room.state is RoomState.ACTIVE
    assert room.agent.dispatch_id == first_dispatch
    assert stack.runner.run_task_calls == 1
    assert len(stack.runner.running()) == 1
    assert len(stack.dispatches()) == 1


def test_late_join_for_a_departed_sid_does_not_resurrect_it(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")
    stack.deliver("participant_joined", sid="PA_1", identity="alice")

    room = stack.room()
    assert room.humans == {}
    assert room.state is RoomState.GRACE


def test_connection_aborted_counts_as_leaving(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.deliver("participant_connection_aborted", sid="PA_1", identity="alice")

    assert stack.room().state is RoomState.GRACE


def test_last_leave_starts_grace_with_deadline_and_generation_timer(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    left_at = stack.clock.now()
    stack.leave("PA_1")

    room = stack.room()
    assert room.state is RoomState.GRACE
    assert room.grace.deadline == left_at + 60
    [scheduled] = stack.timers.sent
    assert scheduled.message == GraceExpired(room="room-1", generation=room.grace.generation)
    assert scheduled.due_at == left_at + 60
    assert len(stack.runner.running()) == 1, "the agent stays during grace"


def test_rejoin_within_grace_keeps_the_same_agent(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    dispatch_id = stack.room().agent.dispatch_id
    stack.leave("PA_1")
    stack.advance(30)
    stack.join("PA_2")
    stack.advance(120)  # the first grace timer fires: stale, must do nothing

    room = stack.room()
    assert room.state is RoomState.ACTIVE
    assert room.agent.dispatch_id == dispatch_id
    assert stack.runner.run_task_calls == 1
    assert len(stack.dispatches()) == 1
    assert stack.livekit.calls["create_dispatch"] == 1


def test_grace_expiry_deletes_dispatch_stops_task_and_closes(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    stack.leave("PA_1")
    stack.advance(59)
    assert stack.room().state is RoomState.GRACE
    stack.advance(1)

    room = stack.room()
    assert room.state is RoomState.CLOSED
    assert room.agent is None
    assert room.expires_at == int(stack.clock.now()) + stack.policy.history_ttl_seconds
    assert stack.dispatches() == []
    assert stack.runner.tasks[arn].running is False
    assert stack.store.get_worker(arn).draining is True


def test_stale_timer_after_second_grace_does_nothing_early(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")  # grace #1, deadline t+60
    stack.advance(40)
    stack.join("PA_2")
    stack.leave("PA_2")  # grace #2, deadline t+100
    stack.advance(30)  # timer #1 fires at t+60: stale

    assert stack.room().state is RoomState.GRACE
    assert len(stack.dispatches()) == 1
    stack.advance(30)
    assert stack.room().state is RoomState.CLOSED


def test_room_finished_cleans_up_immediately(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    stack.deliver("room_finished")

    room = stack.room()
    assert room.state is RoomState.CLOSED
    assert stack.runner.tasks[arn].running is False
    assert stack.dispatches() == []
    assert stack.timers.sent == [], "no grace for a finished room"


def test_human_returning_after_close_gets_a_fresh_agent(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")
    stack.advance(61)
    stack.join("PA_2")

    assert stack.room().state is RoomState.STARTING
    assert stack.runner.run_task_calls == 2
    assert len(stack.runner.running()) == 1


def test_new_session_under_a_reused_name_stops_the_old_agent(stack: TwinStack) -> None:
    stack.join("PA_1")
    old_task = stack.worker_becomes_ready()
    stack.livekit.close_room("room-1")
    stack.join("PA_9", room_sid="RM_2")

    room = stack.room()
    assert room.sid == "RM_2"
    assert set(room.humans) == {"PA_9"}
    assert stack.runner.tasks[old_task].running is False
    assert len(stack.runner.running()) == 1


def test_a_dispatch_claim_taken_over_reuses_existing_dispatches_and_deletes_extras(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.livekit.register_worker("voice-agent")
    stray_a = stack.livekit.create_dispatch("room-1", "voice-agent", "{}")
    stray_b = stack.livekit.create_dispatch("room-1", "voice-agent", "{}")
    # The first claim's CreateDispatch fails (LiveKit may have acted): the retry is a takeover.
    TwinFaults(stack).arm(Fault("livekit", "create_dispatch", lambda: LiveKitUnavailable("injected")))
    with pytest.raises(LiveKitUnavailable):
        stack.worker_becomes_ready()
    stack.controller.reconcile("room-1")

    [kept] = stack.dispatches()
    assert kept.dispatch_id in {stray_a.dispatch_id, stray_b.dispatch_id}
    assert stack.livekit.calls["create_dispatch"] == 2, "no new dispatch when one exists"
    assert stack.room().agent.dispatch_id == kept.dispatch_id


def test_launch_failure_is_retried_through_the_timer_queue(stack: TwinStack) -> None:
    stack.runner.fail_next_launches = 1
    stack.join("PA_1")

    assert stack.runner.running() == []
    assert stack.metrics.counts["TaskLaunchFailures"] == 1
    stack.advance(10)

    assert len(stack.runner.running()) == 1
    assert stack.room().state is RoomState.STARTING


def test_dead_launcher_is_taken_over_without_a_second_task(stack: TwinStack) -> None:
    """A Lambda that launched the task but died before recording it: the next one adopts it."""
    stack.join("PA_1")
    room = stack.room()
    orphan_free = room.model_copy(update={"agent": room.agent.model_copy(update={"task_arn": None})})
    stack.store.save(orphan_free, room.version)

    stack.clock.advance(stack.policy.claim_lease_seconds)
    stack.controller.reconcile("room-1")

    assert len(stack.runner.tasks) == 1
    assert stack.room().agent.task_arn == next(iter(stack.runner.tasks))
