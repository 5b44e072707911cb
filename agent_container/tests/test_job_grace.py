"""The job's own grace is the failsafe, not the primary: it outlasts the control plane's.

The job's timer starts at the RTC disconnect; the control plane's starts only once LiveKit's
webhook has been delivered and processed, seconds later. Were both the same length, the agent
would leave first, and a human returning just before the control plane's deadline would find
the room ``active`` with no agent until the next sweep."""

from __future__ import annotations

from fakes import FakeParticipant, FakeRoom, VirtualClock, agent_settings

from agent_worker.session import job_presence, watch_room
from agent_worker.settings import AgentSettings

CONTROL_PLANE_GRACE = 60
WEBHOOK_LAG = 5.0
"""Seconds from the RTC disconnect to the control plane setting its grace deadline."""

alice = FakeParticipant("PA_alice1", "alice")
alice_again = FakeParticipant("PA_alice2", "alice")


def settings(**overrides: object) -> AgentSettings:
    return agent_settings(grace_period_seconds=CONTROL_PLANE_GRACE, **overrides)


class Job:
    """A job as the entrypoint builds it, on a virtual clock, with the shutdowns it asked for."""

    def __init__(self, agent_settings: AgentSettings, *already_there: FakeParticipant) -> None:
        self.clock = VirtualClock()
        self.room = FakeRoom({p.identity: p for p in already_there})
        self.shutdowns: list[str] = []
        self.presence = job_presence(
            agent_settings,
            room="standup",
            job_id="AJ_1",
            clock=self.clock,
            scheduler=self.clock,
            shutdown=self.shutdowns.append,
        )
        watch_room(self.room, self.presence)


def test_a_human_returning_just_before_the_control_planes_deadline_still_finds_the_agent() -> None:
    job = Job(settings(), alice)
    job.room.leave(alice)  # the job's timer starts now; the control plane's WEBHOOK_LAG later

    job.clock.advance(WEBHOOK_LAG + CONTROL_PLANE_GRACE - 1)
    job.room.join(alice_again)  # the control plane sees a rejoin in grace: room stays active
    job.clock.advance(3600)

    assert job.shutdowns == []


def test_left_alone_the_job_ends_only_after_the_control_planes_grace_plus_the_margin() -> None:
    job = Job(settings(grace_margin_seconds=30), alice)
    job.room.leave(alice)

    job.clock.advance(CONTROL_PLANE_GRACE + 30 - 1)
    assert job.shutdowns == [], "the control plane, not the job, ends it in time"
    job.clock.advance(1)

    assert job.shutdowns == ["no human in the room for 90s"]


def test_the_job_keeps_its_age_cap() -> None:
    job = Job(settings(max_agent_age_seconds=600), alice)

    job.clock.advance(600)

    assert job.shutdowns == ["job reached its maximum age of 600s"]
