"""Property tests: whatever the order, duplication or timing of events, one agent at most."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.room import RoomState
from tests.harness import TwinStack

SIDS = ["PA_1", "PA_2", "PA_3"]

step = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(SIDS)),
    st.tuples(st.just("leave"), st.sampled_from(SIDS)),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=90)),
    st.tuples(st.just("ready"), st.just("")),
    st.tuples(st.just("replay"), st.integers(min_value=0, max_value=50)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=30))
def test_never_more_than_one_agent_and_none_left_behind(steps: list[tuple[str, object]]) -> None:
    stack = TwinStack()
    delivered = []
    for action, arg in steps:
        if action == "join":
            delivered.append(stack.event_for("participant_joined", str(arg)))
            stack.controller.handle_event(delivered[-1])
        elif action == "leave":
            delivered.append(stack.event_for("participant_left", str(arg)))
            stack.controller.handle_event(delivered[-1])
        elif action == "wait":
            stack.advance(float(arg))  # type: ignore[arg-type]
        elif action == "ready" and stack.runner.running():
            stack.worker_becomes_ready()
        elif action == "replay" and delivered:
            stack.controller.handle_event(delivered[int(arg) % len(delivered)])  # type: ignore[call-overload]
        assert len(stack.runner.running()) <= 1
        assert len(stack.dispatches()) <= 1

    stack.advance(stack.policy.grace_seconds + 1)
    room = stack.store.get("room-1")
    if room is None:
        return
    if room.humans:
        assert room.state in (RoomState.STARTING, RoomState.ACTIVE)
        assert len(stack.runner.running()) == 1
    else:
        assert room.state in (RoomState.CLOSED, RoomState.IDLE)
        assert stack.runner.running() == []
        assert stack.dispatches() == []
