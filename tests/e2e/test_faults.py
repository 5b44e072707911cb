"""What goes wrong around the control plane, on the real server: lost webhooks, a job LiveKit
drops, two rooms racing for one warm worker, LiveKit's own room timeout, a speech provider that
cannot be reached."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.e2e.humans import Human
from local.e2e.netns import PEER_IP
from local.e2e.world import World, WorldOptions, always, eventually

COLD_AGENT_TIMEOUT = 60.0
SWEEP = 5.0
MARGIN = 5.0
OUTAGE = 120.0
"""How long the webhook endpoint answers 503 (issue 19: two minutes)."""
SETTLE = 30.0
"""``CLAIM_LEASE_SECONDS``: a jobless dispatch older than this is dead to the sweep."""


def started(tmp_path: Path, **settings: str) -> Iterator[World]:
    with World(WorldOptions(work_dir=tmp_path, sweep_interval_seconds=SWEEP, settings=settings)) as world:
        yield world


@pytest.fixture
def warm_world(tmp_path: Path) -> Iterator[World]:
    yield from started(tmp_path, WARM_TASKS="1")


def test_after_two_minutes_of_lost_webhooks_one_sweep_puts_one_agent_in_each_room_with_humans(
    world: World,
) -> None:
    """The webhook endpoint answers 503 for two minutes while humans join and leave five rooms:
    a last leave, a first join, one human handing over to another, a visit that begins and ends
    inside the outage, a join late in it. LiveKit retries a webhook for 30 s, then drops it."""
    rooms = ("emptied", "kept", "handover", "passing", "late")
    for name in rooms:
        world.create_room(name)
    bob = world.human("emptied", "bob")
    carol = world.human("handover", "carol")
    eventually("bob's and carol's agents", lambda: bob.agents() and carol.agents(), COLD_AGENT_TIMEOUT)
    [handover_agent] = carol.agents()

    world.gate.open = False
    closed = time.monotonic()
    world.leave(bob)
    alice = world.human("kept", "alice")
    dave = world.human("handover", "dave")
    world.leave(carol)
    erin = world.human("passing", "erin")
    time.sleep(20)
    world.leave(erin)
    time.sleep(max(0.0, closed + OUTAGE / 3 - time.monotonic()))
    frank = world.human("late", "frank")
    time.sleep(max(0.0, closed + OUTAGE - time.monotonic()))
    world.gate.open = True
    assert world.gate.refused > 0

    staying = {"kept": alice, "handover": dave, "late": frank}

    def one_agent_with_humans_none_without() -> bool:
        return all(len(world.agents_in(name)) == 1 for name in staying) and not any(
            world.agents_in(name) for name in ("emptied", "passing")
        )

    eventually(
        "one agent in each room with humans, none elsewhere",
        one_agent_with_humans_none_without,
        SWEEP + MARGIN,
    )
    always("still so a sweep later", one_agent_with_humans_none_without, SWEEP)
    assert all(len(person.agents()) == 1 for person in staying.values()), "each human sees its agent"
    assert world.agents_in("handover") == [handover_agent], "the handover kept its agent"


def test_a_job_livekit_drops_still_gets_the_room_its_agent_never_two(warm_world: World) -> None:
    """The warm worker stops answering (SIGSTOP) just before the dispatch: LiveKit offers the job
    once, hears nothing within its 3 s deadline, and drops it. The sweep must notice."""
    world = warm_world
    [worker] = eventually("a ready worker", world.ready_workers, COLD_AGENT_TIMEOUT)
    pid = world.worker_pids()[worker.task_arn]
    os.kill(pid, signal.SIGSTOP)
    try:
        world.create_room("dropped")
        alice = world.human("dropped", "alice")
        eventually("the dispatch", lambda: world.dispatches("dropped"), 10)
        time.sleep(5)  # past LiveKit's 3 s job request deadline
    finally:
        os.kill(pid, signal.SIGCONT)

    eventually("an agent", alice.agents, COLD_AGENT_TIMEOUT + 2 * SWEEP)
    always("never two agents", lambda: len(world.agents_in("dropped")) <= 1, 2 * SWEEP)
    assert len(alice.agents_seen) == 1


def test_two_first_humans_at_once_with_one_warm_worker_each_get_one_agent(warm_world: World) -> None:
    world = warm_world
    eventually("a ready worker", world.ready_workers, COLD_AGENT_TIMEOUT)
    world.create_room("east")
    world.create_room("west")
    east = Human(world.server.url, "east", "alice", _token("east", "alice"))
    west = Human(world.server.url, "west", "bob", _token("west", "bob"))

    async def both() -> None:
        await asyncio.gather(east.connect(), west.connect())

    world.events.run(both())
    try:
        eventually("both rooms' agents", lambda: east.agents() and west.agents(), COLD_AGENT_TIMEOUT + SWEEP)
        always(
            "one agent each", lambda: len(world.agents_in("east")) == len(world.agents_in("west")) == 1, SWEEP
        )
        assert set(east.agents()).isdisjoint(west.agents())
        eventually("the pool refilled", world.ready_workers, COLD_AGENT_TIMEOUT)
    finally:
        world.events.run(east.disconnect())
        world.events.run(west.disconnect())


def _token(room: str, identity: str) -> str:
    from local.e2e.humans import token
    from local.livekit_server import DEV_API_KEY, DEV_API_SECRET

    return token(DEV_API_KEY, DEV_API_SECRET, room, identity)


def test_a_room_with_livekits_default_departure_timeout_is_flagged_and_still_cleaned_up(
    tmp_path: Path,
) -> None:
    """Grace 30 s, but the app let LiveKit create the room (``departure_timeout`` 20 s): the
    control plane warns, and when LiveKit closes the room the agent goes with it."""
    options = WorldOptions(work_dir=tmp_path, grace_seconds=30, sweep_interval_seconds=SWEEP)
    with World(options) as world:
        alice = world.human("shortlived", "alice")  # auto-created: LiveKit's defaults
        eventually("the agent", alice.agents, COLD_AGENT_TIMEOUT)
        functions_log = tmp_path / "stack" / "functions.log"
        assert "room departure_timeout shorter than grace period" in functions_log.read_text()
        assert world.metric("ShortDepartureTimeoutRooms") == 1

        world.leave(alice)
        eventually("LiveKit closed the room", lambda: not world.room_exists("shortlived"), 20 + MARGIN + 5)
        eventually("the record closed", lambda: world.room_state("shortlived") == "closed", 10)
        assert world.dispatches("shortlived") == []
        eventually("the worker gone", lambda: not world.worker_pids(), 20)


def test_an_unreachable_speech_provider_fails_the_room_after_the_crash_loop_limit(tmp_path: Path) -> None:
    """The real Deepgram plugin, pointed at an address in the namespace where nothing listens."""
    refused = f"ws://{PEER_IP}:9/v1/listen"
    settings = {
        "AGENT_PIPELINE": "voice",
        "DEEPGRAM_API_KEY": "dg-e2e-not-a-key",
        "DEEPGRAM_STT_URL": refused,
        "LLM_API_KEY": "sk-e2e-not-a-key",
        "LLM_BASE_URL": f"http://{PEER_IP}:9/v1",
        "CRASH_LOOP_LIMIT": "2",
    }
    options = WorldOptions(work_dir=tmp_path, sweep_interval_seconds=SWEEP, settings=settings)
    with World(options) as world:
        world.create_room("mute")
        world.human("mute", "alice")

        eventually("the room failed", lambda: world.room_state("mute") == "failed", 4 * COLD_AGENT_TIMEOUT)
        record = world.room_record("mute")
        assert record is not None
        assert len(record.crashes) >= 2
        assert world.metric("JobFailures") >= 2, "each failed job counted"
        always("no further dispatch", lambda: not world.agents_in("mute"), 2 * SWEEP)
        eventually("the failed dispatch deleted", lambda: not world.dispatches("mute"), SETTLE + 2 * SWEEP)

        world.human("mute", "bob")  # a new human is a new chance
        eventually("the crash loop reset", lambda: world.room_state("mute") in ("starting", "active"), 15)
        reset = world.room_record("mute")
        assert reset is not None and reset.failed_at is None
