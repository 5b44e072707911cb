"""Humans come and go on the real server: the agent stays exactly while they are there, plus the
grace period. What a human sees (its ``rtc.Room``) and what LiveKit lists (RoomService,
AgentDispatchService) are both checked; the stack's grace is 10 s and it sweeps every 5 s."""

from __future__ import annotations

import time

from local.e2e.humans import Human
from local.e2e.world import World, always, eventually

COLD_AGENT_TIMEOUT = 60.0
GRACE = 10
MARGIN = 5.0


def first_agent(world: World, room: str, identity: str) -> tuple[Human, str]:
    world.create_room(room)
    person = world.human(room, identity)
    [agent] = eventually(f"the agent in {room}", person.agents, COLD_AGENT_TIMEOUT)
    return person, agent


def test_a_refresh_within_five_seconds_keeps_the_one_agent(world: World) -> None:
    alice, agent = first_agent(world, "refresh", "alice")

    world.leave(alice)
    time.sleep(2)
    again = world.human("refresh", "alice")

    eventually("the agent seen again", again.agents, 10)
    always("one agent, the same", lambda: again.agents() == [agent], 8)
    assert world.agents_in("refresh") == [agent]
    assert len(world.dispatches("refresh")) == 1
    assert world.tasks_started() == 1


def test_three_humans_one_leaving_and_returning_keep_one_agent(world: World) -> None:
    alice, agent = first_agent(world, "trio", "alice")
    bob = world.human("trio", "bob")
    carol = world.human("trio", "carol")
    eventually("bob and carol see the agent", lambda: bob.agents() == carol.agents() == [agent], 10)

    world.leave(bob)
    always("one agent while bob is away", lambda: world.agents_in("trio") == [agent], 4)
    bob = world.human("trio", "bob")

    eventually("bob sees the agent again", lambda: bob.agents() == [agent], 10)
    always("one agent for all three", lambda: alice.agents() == carol.agents() == bob.agents() == [agent], 4)
    assert len(world.dispatches("trio")) == 1
    assert world.tasks_started() == 1


def test_the_agent_outlives_the_last_human_by_the_grace_period_only(
    world: World, timings: list[tuple[str, float]]
) -> None:
    alice, agent = first_agent(world, "leaving", "alice")
    [task] = world.worker_pids()

    world.leave(alice)
    left = time.monotonic()

    always(
        "the agent stays through grace - 5 s", lambda: world.agents_in("leaving") == [agent], GRACE - MARGIN
    )
    eventually("the agent gone by grace + 5 s", lambda: not world.agents_in("leaving"), 2 * MARGIN)
    timings.append(("last human left -> agent gone (grace 10 s)", time.monotonic() - left))
    assert world.dispatches("leaving") == [], "the dispatch is deleted"
    eventually("the worker process exited", lambda: task not in world.worker_pids(), 15)
    assert world.room_record("leaving").agent is None  # type: ignore[union-attr]


def test_a_human_back_at_half_the_grace_finds_the_same_agent(world: World) -> None:
    alice, agent = first_agent(world, "rejoin", "alice")

    world.leave(alice)
    time.sleep(GRACE / 2)
    back = world.human("rejoin", "alice")

    eventually("the agent seen again", back.agents, 10)
    always("the same agent, never a second", lambda: back.agents() == [agent], GRACE + MARGIN)
    assert back.agents_seen == [agent]
    assert world.tasks_started() == 1


def test_delete_room_during_grace_removes_the_agent_at_once(world: World) -> None:
    alice, _ = first_agent(world, "deleted", "alice")
    [task] = world.worker_pids()
    world.leave(alice)
    eventually("grace", lambda: world.room_state("deleted") == "grace", 10)

    world.delete_room("deleted")

    eventually("the room gone", lambda: not world.room_exists("deleted"), 5)
    eventually("the worker released", lambda: task not in world.worker_pids(), 15)
    eventually("the record closed", lambda: world.room_state("deleted") == "closed", 10)


def test_kill_9_of_the_agent_worker_brings_a_new_agent(
    world: World, timings: list[tuple[str, float]]
) -> None:
    alice, agent = first_agent(world, "crash", "alice")
    [task] = world.worker_pids()

    world.kill_worker(task)
    killed = time.monotonic()

    new_agent = lambda: any(other != agent for other in alice.agents())  # noqa: E731
    eventually("a new agent", new_agent, COLD_AGENT_TIMEOUT + 30)
    timings.append(("kill -9 of the worker -> new agent visible", time.monotonic() - killed))
    # The killed agent's participant stays listed until LiveKit notices its connection is dead.
    eventually("the killed agent's participant gone", lambda: agent not in world.agents_in("crash"), 60)
    always("one agent at the end", lambda: len(world.agents_in("crash")) == 1, 5)
    assert len(world.dispatches("crash")) == 1
