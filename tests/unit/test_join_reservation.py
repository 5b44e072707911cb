"""Join reservations: the agent is asked for when the join token is issued, before LiveKit has
seen the human, and the core's rule becomes "no agent without humans beyond the last
reservation plus grace" (room.expect_human, reconcile.decide)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.reconcile import World, decide, expecting_human, grace_cancelled, needs_worker_check
from control_plane.room import (
    JOIN_RESERVATION_SECONDS,
    MAX_EXPECTED,
    MAX_RESERVATION_SECONDS,
    Agent,
    Grace,
    Human,
    Room,
    RoomState,
    expect_human,
    live_reservations,
    observe_room_finished,
    start_session,
)
from tests.harness import POLICY, ROOM_DEPARTURE_TIMEOUT, TwinStack

RESERVATION = 30.0
GRACE = POLICY.grace_seconds


def reserve(
    stack: TwinStack, identity: str = "alice", seconds: float = RESERVATION, room: str = "room-1"
) -> Room:
    """What the join route does: open the LiveKit room, then reserve and reconcile."""
    live = stack.controller.create_room(room)
    after = stack.controller.expect_human(live, identity, stack.clock.now() + seconds)
    assert after is not None
    return after


# --- the pure rules ---------------------------------------------------------------------------


def test_a_reservation_is_capped_and_lapsed_ones_are_dropped() -> None:
    room = Room(name="r", sid="RM_1", expected={"old": 5.0})

    after = expect_human(room, "alice", until=10_000.0, now=10.0)

    assert after.expected == {"alice": 10.0 + MAX_RESERVATION_SECONDS}
    assert live_reservations(after, now=10.0 + MAX_RESERVATION_SECONDS) == {}


def test_asking_again_never_shortens_a_reservation_and_the_newest_are_kept() -> None:
    room = Room(name="r", sid="RM_1")
    room = expect_human(room, "alice", until=100.0, now=0.0)
    assert expect_human(room, "alice", until=50.0, now=0.0) is room

    for number in range(MAX_EXPECTED + 5):
        room = expect_human(room, f"guest-{number}", until=200.0 + number, now=0.0)
    assert len(room.expected) == MAX_EXPECTED
    assert f"guest-{MAX_EXPECTED + 4}" in room.expected and "alice" not in room.expected


def test_a_new_session_or_a_finished_one_forgets_reservations() -> None:
    room = expect_human(Room(name="r", sid="RM_1"), "alice", until=100.0, now=0.0)

    assert start_session(room, "RM_2", created_at=5.0, now=5.0).expected == {}
    finished = observe_room_finished(room, "r", "RM_1", 0.0, now=5.0)
    assert finished is not None and finished.expected == {} and finished.finished


@pytest.mark.parametrize(
    ("expected", "finished", "now", "wanted"),
    [
        ({}, False, 0.0, False),
        ({"alice": 10.0}, False, 5.0, True),
        ({"alice": 10.0}, False, 10.0, False),
        ({"alice": 10.0}, True, 5.0, False),
    ],
)
def test_a_live_reservation_counts_as_presence(
    expected: dict[str, float], finished: bool, now: float, wanted: bool
) -> None:
    assert expecting_human(Room(name="r", sid="RM_1", expected=expected, finished=finished), now) is wanted


def test_an_empty_room_with_a_reservation_launches_and_one_without_does_not() -> None:
    reserved = Room(name="r", sid="RM_1", expected={"alice": 30.0})

    decision = decide(reserved, World(), 0.0, POLICY)
    assert decision is not None and decision.effects and decision.room.agent is not None

    lapsed = decide(reserved, World(), 30.0, POLICY)
    assert lapsed is None or not lapsed.effects


def test_grace_runs_from_the_end_of_the_reservation() -> None:
    agent = Agent(
        launch_token="t", launch_claimed_at=0.0, room_sid="RM_1", task_arn="arn:task", slot_reserved=True
    )
    room = Room(name="r", sid="RM_1", agent=agent, expected={"alice": 30.0})

    decision = decide(room, World(), 0.0, POLICY)

    assert decision is not None
    assert decision.room.grace is not None and decision.room.grace.deadline == 30.0 + GRACE
    [timer] = decision.before_save
    assert timer.delay_seconds == 30 + GRACE and timer.generation == decision.room.grace.generation


def test_a_reservation_pushes_a_running_grace_later_never_earlier() -> None:
    agent = Agent(
        launch_token="t", launch_claimed_at=0.0, room_sid="RM_1", task_arn="arn:task", slot_reserved=True
    )
    in_grace = Room(
        name="r",
        sid="RM_1",
        agent=agent,
        grace=Grace(generation=3, deadline=100.0),
        generation=3,
        in_attention_index=True,
    )

    assert decide(in_grace, World(), 50.0, POLICY) is None, "no reservation: the grace stands"
    pushed = decide(in_grace.model_copy(update={"expected": {"bob": 80.0}}), World(), 50.0, POLICY)
    assert pushed is not None and pushed.room.grace == Grace(generation=4, deadline=80.0 + GRACE)
    short = in_grace.model_copy(update={"expected": {"bob": 20.0 + 50.0 - GRACE}})
    assert decide(short, World(), 50.0, POLICY) is None, "a deadline is never pulled earlier"


def test_a_worker_ready_before_the_human_arrives_is_dispatched() -> None:
    agent = Agent(
        launch_token="t", launch_claimed_at=0.0, room_sid="RM_1", task_arn="arn:task", slot_reserved=True
    )
    room = Room(
        name="r",
        sid="RM_1",
        agent=agent,
        expected={"alice": 30.0},
        grace=Grace(generation=1, deadline=30.0 + GRACE),
        generation=1,
    )

    assert needs_worker_check(room)
    decision = decide(room, World(worker_ready=True), 5.0, POLICY)
    assert decision is not None and type(decision.effects[0]).__name__ == "EnsureDispatch"
    after_lapse = decide(room, World(worker_ready=True), 31.0, POLICY)
    assert after_lapse is None or not after_lapse.effects, "nobody came: no dispatch into an empty room"


@pytest.mark.parametrize(
    ("before_grace", "after_grace", "after_agent", "stopping", "cancelled"),
    [
        (True, False, True, False, True),
        (True, False, True, True, False),
        (True, False, False, False, False),
        (True, True, True, False, False),
        (False, False, True, False, False),
    ],
)
def test_grace_cancelled_means_the_agent_stayed_through_a_human_return(
    before_grace: bool, after_grace: bool, after_agent: bool, stopping: bool, cancelled: bool
) -> None:
    agent = Agent(launch_token="t", launch_claimed_at=0.0, room_sid="RM_1")
    grace = Grace(generation=1, deadline=60.0)
    before = Room(name="r", sid="RM_1", agent=agent, grace=grace if before_grace else None)
    after = before.model_copy(
        update={
            "grace": grace if after_grace else None,
            "agent": agent if after_agent else None,
            "stop_requested_at": 1.0 if stopping else None,
            "humans": {"PA_1": Human(identity="a", joined_at=1.0)},
        }
    )
    assert grace_cancelled(before, after) is cancelled


# --- flows on the twins -----------------------------------------------------------------------


def test_a_reservation_launches_the_agent_before_the_human_joins() -> None:
    stack = TwinStack()

    room = reserve(stack)

    assert stack.runner.run_task_calls == 1
    assert room.agent is not None and room.agent.task_arn is not None
    assert room.departure_timeout == ROOM_DEPARTURE_TIMEOUT, "created with reservation + grace + margin"
    stack.worker_becomes_ready()
    assert len(stack.dispatches()) == 1, "dispatched before the human connected"


@pytest.mark.parametrize("departure_timeout", [ROOM_DEPARTURE_TIMEOUT, GRACE + 10])
def test_a_human_who_connects_and_leaves_at_once_never_keeps_the_agent_past_the_room(
    departure_timeout: int,
) -> None:
    """LiveKit closes the room departure_timeout after the last human leaves: the control
    plane's deadline (reservation end + grace) must not be later. Rooms we create cover a whole
    join reservation; a room LiveKit reports with less (kept from an earlier creation) caps it."""
    stack = TwinStack()
    live = replace(stack.controller.create_room("room-1"), departure_timeout=departure_timeout)
    stack.controller.expect_human(live, "alice", stack.clock.now() + JOIN_RESERVATION_SECONDS)
    stack.worker_becomes_ready()
    stack.join("PA_1")
    stack.advance(1)
    stack.leave("PA_1")
    livekit_closes_at = stack.clock.now() + departure_timeout

    room = stack.room()
    assert room.grace is not None and room.grace.deadline <= livekit_closes_at
    if departure_timeout == ROOM_DEPARTURE_TIMEOUT:
        assert room.grace.deadline == stack.clock.now() - 1 + JOIN_RESERVATION_SECONDS + GRACE, "kept"


def test_the_human_joining_keeps_the_same_agent() -> None:
    stack = TwinStack()
    reserve(stack)
    stack.worker_becomes_ready()
    dispatch = stack.room().agent.dispatch_id

    stack.join("PA_1")
    stack.advance(RESERVATION + GRACE + 30)

    room = stack.room()
    assert room.state is RoomState.ACTIVE and room.grace is None
    assert room.agent.dispatch_id == dispatch
    assert stack.runner.run_task_calls == 1
    assert stack.metrics.counts["GraceCancelled"] == 1


def test_nobody_comes_the_agent_goes_at_reservation_end_plus_grace() -> None:
    stack = TwinStack()
    reserve(stack)
    stack.worker_becomes_ready()

    stack.advance(RESERVATION + GRACE - 1)
    assert stack.runner.running(), "still within reservation + grace"
    stack.advance(2)

    assert stack.runner.running() == []
    assert stack.dispatches() == []
    assert stack.room().state is RoomState.CLOSED


def test_joining_again_reuses_the_agent_and_extends_the_wait() -> None:
    stack = TwinStack()
    reserve(stack)
    stack.advance(20)
    reserve(stack, "alice")
    stack.advance(RESERVATION + GRACE - 5)

    assert stack.runner.run_task_calls == 1
    assert stack.runner.running(), "the second reservation moved the deadline"


def test_a_join_during_grace_keeps_the_lingering_agent() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")
    stack.advance(GRACE - 10)

    reserve(stack, "bob")
    stack.advance(20)

    assert stack.runner.run_task_calls == 1 and stack.runner.running()
    stack.join("PA_2", identity="bob")
    assert stack.room().state is RoomState.ACTIVE


def test_a_reservation_after_the_deadline_but_before_the_timer_keeps_the_agent() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    stack.worker_becomes_ready()
    stack.leave("PA_1")
    stack.clock.advance(GRACE + 1)  # the grace timer is due but has not run

    reserve(stack, "bob")
    stack.run_due_timers()

    assert stack.runner.run_task_calls == 1
    assert stack.runner.running() and stack.room().grace is not None


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("reserve"), st.sampled_from(["alice", "bob"])),
            st.tuples(st.just("join"), st.sampled_from(["PA_1", "PA_2"])),
            st.tuples(st.just("leave"), st.sampled_from(["PA_1", "PA_2"])),
            st.tuples(st.just("wait"), st.integers(min_value=1, max_value=120)),
            st.tuples(st.just("ready"), st.just("")),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_reservations_never_make_two_agents_or_leave_one_behind(steps: list[tuple[str, object]]) -> None:
    stack = TwinStack()
    for action, arg in steps:
        if action == "reserve":
            reserve(stack, str(arg))
        elif action == "join":
            stack.join(str(arg))
        elif action == "leave":
            stack.leave(str(arg))
        elif action == "wait":
            stack.advance(float(arg))  # type: ignore[arg-type]
        elif action == "ready" and stack.runner.running():
            stack.worker_becomes_ready()
        assert len(stack.runner.running()) <= 1
        assert len(stack.dispatches()) <= 1

    stack.advance(MAX_RESERVATION_SECONDS + GRACE + 1)
    room = stack.store.get("room-1")
    if room is None:
        return
    if room.humans:
        assert len(stack.runner.running()) == 1
    else:
        assert stack.runner.running() == [] and stack.dispatches() == []
