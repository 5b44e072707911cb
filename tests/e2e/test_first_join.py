"""The first human in a room gets the real agent, and hears it."""

from __future__ import annotations

import time

from livekit import api

from local.e2e.world import World, eventually

COLD_AGENT_TIMEOUT = 60.0
"""A cold worker: the agent worker's process start and registration (tens of seconds on a busy
2-core machine), then the dispatch."""


def test_the_first_human_gets_one_agent_that_echoes_it(
    world: World, timings: list[tuple[str, float]]
) -> None:
    world.create_room("standup")
    alice = world.human("standup", "alice")
    started = time.monotonic()

    eventually("an agent in alice's room", alice.agents, COLD_AGENT_TIMEOUT)
    timings.append(("first human -> agent visible (cold worker)", time.monotonic() - started))

    assert len(alice.agents()) == 1
    assert world.agents_in("standup") == alice.agents()
    eventually(
        "LiveKit lists the agent's running job in its dispatch", lambda: running_jobs(world, "standup"), 10
    )
    assert world.room_record("standup").state == "active"
    eventually("alice hears her tone echoed by the agent", lambda: alice.audible_agent_frames > 10, 20)


def running_jobs(world: World, room: str) -> list[str]:
    """Job ids LiveKit reports running in the room's one dispatch of our agent."""
    [dispatch] = world.dispatches(room)
    return [job.id for job in dispatch.state.jobs if job.state.status == api.JobStatus.JS_RUNNING]
