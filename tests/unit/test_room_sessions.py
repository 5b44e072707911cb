"""Sessions of one room name, lost first joins and grace edges, on the twins (virtual clock).

LiveKit reuses room names, retries webhooks for up to 30 s and may deliver an old session's
event after a new session started; the room must follow the newest session only.
"""

from __future__ import annotations

import pytest

from control_plane.room import RoomState
from control_plane.worker_protocol import GraceExpired
from tests.harness import TwinStack


@pytest.fixture
def stack() -> TwinStack:
    return TwinStack()


def _second_session_with_an_agent(stack: TwinStack) -> tuple[object, object]:
    """S1: alice talks to an agent, leaves, LiveKit closes S1; S2: bob joins and gets an agent.
    Returns S1's listing and S2's, both as LiveKit showed them."""
    stack.join("PA_1")
    stack.worker_becomes_ready()
    first = stack.livekit.get_room("room-1")
    stack.advance(10)
    stack.leave("PA_1")
    stack.advance(20)
    stack.livekit.close_room("room-1")
    stack.deliver("room_finished", room_sid=first.sid, room_created_at=first.created_at)
    stack.advance(40)
    stack.join("PA_2", identity="bob")
    stack.worker_becomes_ready()
    second = stack.livekit.get_room("room-1")
    assert second.sid != first.sid and second.created_at > first.created_at
    assert stack.room().state is RoomState.ACTIVE
    return first, second


@pytest.mark.parametrize(
    ("kind", "sid"),
    [
        ("participant_left", "PA_1"),  # LiveKit's retry of the leave that once got a 503
        ("participant_joined", "PA_1"),
        ("participant_joined", "PA_7"),
        ("room_started", None),
        ("room_finished", None),
    ],
)
def test_an_earlier_sessions_late_webhook_changes_nothing(
    stack: TwinStack, kind: str, sid: str | None
) -> None:
    first, second = _second_session_with_an_agent(stack)
    before = stack.room()
    launches = stack.runner.run_task_calls

    outcome = stack.deliver(kind, room_sid=first.sid, room_created_at=first.created_at, sid=sid)

    assert outcome == "stale_session"
    after = stack.room()
    assert (after.sid, set(after.humans), after.agent) == (second.sid, {"PA_2"}, before.agent)
    assert after.state is RoomState.ACTIVE
    assert stack.runner.run_task_calls == launches, "no agent launched for a dead session"
    assert [t.arn for t in stack.runner.running()] == [before.agent.task_arn], "the live agent stays"
    assert len(stack.dispatches()) == 1


def test_a_late_old_session_event_without_creation_time_is_still_stale(stack: TwinStack) -> None:
    """Older servers omit creation_time: the ended sid itself is remembered."""
    first, second = _second_session_with_an_agent(stack)

    outcome = stack.deliver("participant_left", room_sid=first.sid, room_created_at=0.0, sid="PA_1")

    assert outcome == "stale_session"
    assert stack.room().sid == second.sid and "PA_2" in stack.room().humans


def test_sweep_follows_a_new_session_whose_webhooks_were_all_lost(stack: TwinStack) -> None:
    stack.join("PA_1")
    old_task = stack.worker_becomes_ready()
    first = stack.livekit.get_room("room-1")
    stack.livekit.close_room("room-1")  # S1's room_finished is lost …
    stack.advance(30)
    stack.livekit.add_participant("room-1", "PA_2", "bob")  # … and so is S2's first join
    stack.advance(30)

    stack.sweep()

    room = stack.room()
    second = stack.livekit.get_room("room-1")
    assert (room.sid, set(room.humans), room.ended_sessions) == (second.sid, {"PA_2"}, (first.sid,))
    assert not stack.runner.tasks[old_task].running, "the old session's agent is stopped"
    assert room.agent is not None and room.agent.room_sid == second.sid, "the new human gets an agent"
    assert stack.deliver("participant_left", room_sid=first.sid, sid="PA_1") == "stale_session"


@pytest.mark.parametrize("loss", ["never_delivered", "claimed_then_lambda_died"])
def test_a_lost_first_join_is_healed_within_one_sweep(stack: TwinStack, loss: str) -> None:
    stack.livekit.add_participant("room-1", "PA_1", "alice")
    if loss == "claimed_then_lambda_died":
        first = stack.event_for("participant_joined", "PA_1", room_sid=stack.livekit.get_room("room-1").sid)
        now = int(stack.clock.now())
        stack.store.claim_event(first.id, now, now + 86400)  # the dedupe record outlived the Lambda
        assert stack.controller.handle_event(first) == "duplicate"
    assert stack.runner.run_task_calls == 0

    stack.sweep()

    assert "PA_1" in stack.room().humans
    assert stack.runner.run_task_calls == 1
    stack.worker_becomes_ready()
    assert stack.room().state is RoomState.ACTIVE and len(stack.dispatches()) == 1


def test_no_dispatch_is_made_into_a_room_nobody_is_in(stack: TwinStack) -> None:
    """Grace after the dispatch was lost: the worker is ready, but nobody is there to talk to."""
    stack.join("PA_1")
    task = stack.task_of()
    stack.leave("PA_1")
    assert stack.room().state is RoomState.GRACE

    stack.worker_becomes_ready()

    assert stack.dispatches() == []
    assert stack.room().agent.dispatch_id is None and stack.room().agent.task_arn == task


def test_an_early_grace_timer_is_rearmed_for_the_remainder(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")
    grace = stack.room().grace
    assert grace is not None
    stack.clock.advance(grace.deadline - stack.clock.now() - 5)
    stack.timers.take_due()
    stack.timers.sent.clear()  # SQS delivers the grace timer 5 s early

    stack.controller.handle_timer(GraceExpired(room="room-1", generation=grace.generation))

    assert stack.room().state is RoomState.GRACE, "not before the deadline"
    [rearmed] = stack.timers.sent
    assert rearmed.message == GraceExpired(room="room-1", generation=grace.generation)
    assert rearmed.due_at >= grace.deadline
    stack.advance(6)
    assert stack.room().state is RoomState.CLOSED and stack.dispatches() == []


def test_a_settled_room_left_in_the_index_by_a_fast_path_leave_is_taken_out(stack: TwinStack) -> None:
    stack.join("PA_1")
    room = stack.room()
    # The launch failed and backs off; the human leaves before it is retried.
    stack.store.save(room.model_copy(update={"agent": None, "next_launch_at": 1e12}), room.version)
    stack.store.observe_participant(
        stack.event_for("participant_left", "PA_1", room_sid=room.sid).participant_change()
    )
    assert stack.room().in_attention_index and not stack.room().needs_attention

    stack.sweep()

    assert not stack.room().in_attention_index
    assert stack.room().expires_at is not None, "outside the index, the record expires"
