"""Why a room closed is on its record (``closed_reason``), written with ``closed_at``; and the
grace deadline comes with why it is where it is (``api.views.grace_view``)."""

from __future__ import annotations

import pytest

from api.views import grace_view
from control_plane.room import CloseReason, Grace, Room, RoomState
from tests.harness import TwinStack

T0 = 1_800_000_000.0


@pytest.fixture
def stack() -> TwinStack:
    return TwinStack()


def active(stack: TwinStack) -> str:
    stack.join("PA_1")
    return stack.worker_becomes_ready()


def closed(stack: TwinStack) -> Room:
    room = stack.room()
    assert room.state is RoomState.CLOSED and room.closed_at is not None
    return room


def test_humans_gone_and_grace_over(stack: TwinStack) -> None:
    active(stack)
    stack.leave("PA_1")
    assert stack.room().closed_reason is None, "in grace the room is not closing yet"

    stack.advance(61)

    assert closed(stack).closed_reason is CloseReason.GRACE_ENDED


def test_livekit_closed_the_room(stack: TwinStack) -> None:
    active(stack)
    stack.deliver("room_finished")

    assert closed(stack).closed_reason is CloseReason.ROOM_FINISHED


def test_the_sweep_found_the_room_gone(stack: TwinStack) -> None:
    active(stack)
    stack.livekit.close_room("room-1")  # its room_finished webhook lost
    stack.advance(20)

    stack.sweep()

    assert closed(stack).closed_reason is CloseReason.SWEPT


def test_an_operator_closed_an_empty_room(stack: TwinStack) -> None:
    active(stack)
    stack.leave("PA_1")

    stack.controller.force_close("room-1")

    assert closed(stack).closed_reason is CloseReason.FORCE_CLOSED


def test_an_operators_close_with_humans_there_closes_nothing(stack: TwinStack) -> None:
    active(stack)

    after = stack.controller.force_close("room-1")

    assert after is not None and after.state is RoomState.STARTING
    assert after.closed_reason is None and after.closed_at is None


def test_a_failed_room_whose_humans_left(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.crash_loop()
    assert stack.room().state is RoomState.FAILED

    stack.leave("PA_1")

    assert closed(stack).closed_reason is CloseReason.FAILED


def test_the_agents_task_died_during_grace(stack: TwinStack) -> None:
    active(stack)
    stack.leave("PA_1")

    stack.crash()

    assert closed(stack).closed_reason is CloseReason.AGENT_TASK_STOPPED


def test_a_human_returning_clears_the_reason(stack: TwinStack) -> None:
    active(stack)
    stack.leave("PA_1")
    stack.advance(61)

    stack.join("PA_2")

    room = stack.room()
    assert room.state is RoomState.STARTING
    assert room.closed_reason is None and room.closed_at is None


def in_grace(deadline: float, **fields: object) -> Room:
    return Room(name="r", sid="RM_1", grace=Grace(generation=1, deadline=deadline), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("room", "why", "livekit_closes_at"),
    [
        (
            in_grace(T0 + 60, departed={"PA_1": T0}, departure_timeout=130),
            "grace 60 s from the last human leaving",
            None,
        ),
        (
            in_grace(T0 + 72, departed={"PA_1": T0}, expected={"bob": T0 + 12}, departure_timeout=130),
            "grace 60 s from the end of the join reservation of bob (12 s after the last human left)",
            None,
        ),
        (
            in_grace(T0 + 60, departed={"PA_1": T0 - 5, "PA_2": T0}, departure_timeout=20),
            "grace 60 s from the last human leaving; LiveKit closes the room 40 s sooner, "
            "its departure_timeout (20 s) after the last human left",
            T0 + 20,
        ),
    ],
    ids=["grace", "extended by a reservation", "cut short by departure_timeout"],
)
def test_the_grace_deadline_says_why_it_is_where_it_is(
    room: Room, why: str, livekit_closes_at: float | None
) -> None:
    view = grace_view(room, grace_seconds=60)

    assert view is not None
    assert view.why == why
    assert view.livekit_closes_at == livekit_closes_at


def test_no_grace_no_explanation() -> None:
    assert grace_view(Room(name="r"), grace_seconds=60) is None
