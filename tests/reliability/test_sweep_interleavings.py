"""The sweep and a webhook at once, on the twins: at every point where one can overtake the other.

A sweep reads (the index, ECS, LiveKit's rooms, each room's participants and dispatches) and
then writes what it concluded; a webhook processed in between makes what it read stale. A dry
run lists every port call the sweep makes; then, for each of them, the scenario is played again
with the webhook processed right after that call returns. Every interleaving is played exactly,
not left to thread timing (``test_concurrent_lambdas.py`` runs the race with real processes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from control_plane.humans import is_human
from tests.harness import TwinStack
from tests.reliability.invariants import (
    GRACE_SLACK_SECONDS,
    agent_for_every_room_with_humans,
    at_most_one_agent,
    holds,
    no_agent_without_humans,
    twin_views,
)
from tests.reliability.report import Figures

ROOM = "room-1"
# What the sweep reads and writes through the ports; a webhook may land after any of them.
SWEEP_CALLS = {
    "store": ("rooms_needing_attention", "live_workers", "get", "save", "observe_participant"),
    "runner": ("list_tasks", "describe_tasks", "stop"),
    "livekit": ("list_rooms", "list_participants", "list_dispatches", "create_dispatch", "delete_dispatch"),
}


def deliver(stack: TwinStack, kind: str, sid: str, identity: str) -> str:
    """A webhook for the session LiveKit has open, stamped with its creation time."""
    live = stack.livekit.get_room(ROOM)
    assert live is not None
    return stack.deliver(kind, sid=sid, identity=identity, room_created_at=live.created_at)


@dataclass
class Interleaver:
    """Counts the port calls made during a sweep and runs ``webhook`` right after call ``at``."""

    webhook: Callable[[], object]
    at: int | None
    calls: list[str] = field(default_factory=list)
    sweeping: bool = False
    fired: bool = False

    def install(self, stack: TwinStack) -> None:
        for port, methods in SWEEP_CALLS.items():
            target = getattr(stack, port)
            for method in methods:
                setattr(target, method, self._hooked(f"{port}.{method}", getattr(target, method)))

    def _hooked(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            answer = original(*args, **kwargs)
            if self.sweeping and not self.fired:
                self.calls.append(name)
                if len(self.calls) - 1 == self.at:
                    self.fired = True
                    self.webhook()
            return answer

        return call

    def sweep(self, stack: TwinStack) -> None:
        self.sweeping = True
        try:
            stack.sweep()
        finally:
            self.sweeping = False


def active_session(stack: TwinStack) -> None:
    stack.livekit.open_room(ROOM, departure_timeout=70)
    stack.livekit.add_participant(ROOM, "PA_1", "alice")
    deliver(stack, "participant_joined", "PA_1", "alice")
    stack.worker_becomes_ready(ROOM)


def a_new_sessions_join(stack: TwinStack) -> Callable[[], object]:
    """S1 ended with its leave and room_finished lost, S2 opened with its room_started lost;
    bob's join of S2 is processed in the middle of the sweep (issue 8, defect 1)."""
    stack.livekit.close_room(ROOM)
    stack.advance(30)
    stack.livekit.open_room(ROOM, departure_timeout=70)
    stack.advance(60)

    def bob_joins() -> None:
        stack.livekit.add_participant(ROOM, "PA_2", "bob")
        deliver(stack, "participant_joined", "PA_2", "bob")

    return bob_joins


def the_last_humans_leave(stack: TwinStack) -> Callable[[], object]:
    stack.advance(60)

    def alice_leaves() -> None:
        stack.livekit.remove_participant(ROOM, "PA_1")
        deliver(stack, "participant_left", "PA_1", "alice")

    return alice_leaves


def a_second_humans_join(stack: TwinStack) -> Callable[[], object]:
    stack.advance(60)

    def carol_joins() -> None:
        stack.livekit.add_participant(ROOM, "PA_3", "carol")
        deliver(stack, "participant_joined", "PA_3", "carol")

    return carol_joins


def a_lost_first_join_healed(stack: TwinStack) -> Callable[[], object]:
    """Alice's join was lost, so the room is untracked; dave's join lands mid-sweep."""
    stack.livekit.open_room("room-1", departure_timeout=70)
    stack.livekit.add_participant(ROOM, "PA_1", "alice")
    stack.advance(60)

    def dave_joins() -> None:
        stack.livekit.add_participant(ROOM, "PA_4", "dave")
        deliver(stack, "participant_joined", "PA_4", "dave")

    return dave_joins


RACES: dict[str, tuple[Callable[[TwinStack], None], Callable[[TwinStack], Callable[[], object]]]] = {
    "a new session's join": (active_session, a_new_sessions_join),
    "the last human's leave": (active_session, the_last_humans_leave),
    "a second human's join": (active_session, a_second_humans_join),
    "a join into a room whose first join was lost": (lambda stack: None, a_lost_first_join_healed),
}


def play(race: str, at: int | None) -> tuple[TwinStack, Interleaver]:
    setup, make_webhook = RACES[race]
    stack = TwinStack()
    setup(stack)
    interleaver = Interleaver(make_webhook(stack), at)
    interleaver.install(stack)
    interleaver.sweep(stack)
    return stack, interleaver


def violations_after(stack: TwinStack) -> list[str]:
    """Right after the sweep, and once grace + 5 s passed and workers registered."""
    found = []
    views = twin_views(stack, [ROOM])
    found += at_most_one_agent(views) + agent_for_every_room_with_humans(views, stack.clock.now())
    record = stack.store.get(ROOM)
    humans = {p.sid for p in stack.livekit.list_participants(ROOM) if is_human(p.kind)}
    if record is None or set(record.humans) != humans:
        found.append(
            f"the record has humans {sorted(record.humans) if record else None}, LiveKit {sorted(humans)}"
        )
    stack.advance(stack.policy.grace_seconds + GRACE_SLACK_SECONDS)
    while unready := [t for t in stack.runner.running() if not stack.worker_registered(t.arn)]:
        stack.worker_becomes_ready(unready[0].room)
    views = twin_views(stack, [ROOM])
    found += at_most_one_agent(views) + no_agent_without_humans(views)
    found += agent_for_every_room_with_humans(views, stack.clock.now(), dispatched=True)
    return found


@pytest.mark.parametrize("race", RACES)
def test_a_webhook_processed_while_the_sweep_runs_is_never_undone(race: str, figures: Figures) -> None:
    _, dry = play(race, None)
    points = list(dry.calls)
    scenario = f"sweep overtaken by {race}"
    outcome = "the webhook's change survives, 1 agent"
    figures.record(scenario, outcome, storm=2, interleavings=len(points))
    assert points, "the sweep made no port call, so nothing could overtake it"

    found: list[str] = []
    for at, call in enumerate(points):
        stack, interleaver = play(race, at)
        assert interleaver.fired, f"the replay diverged from the dry run before call {at} ({call})"
        found += [f"webhook after the sweep's call {at} ({call}): {v}" for v in violations_after(stack)]

    figures.record(
        scenario, outcome, duplicates=sum("agent tasks" in v or "dispatches of" in v for v in found)
    )
    holds(found)
