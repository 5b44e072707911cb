"""The in-job grace period: the agent leaves a room that has had no human for the grace."""

from __future__ import annotations

import logging

import pytest
from fakes import AGENT, EGRESS, SIP, FakeParticipant, FakeRoom, VirtualClock

import control_plane.humans
from agent_worker import presence as presence_module
from agent_worker.presence import RoomPresence
from agent_worker.session import watch_room

GRACE = 60.0
MAX_AGE = 4 * 3600.0

alice = FakeParticipant("PA_alice1", "alice")
alice_after_refresh = FakeParticipant("PA_alice2", "alice")
bob = FakeParticipant("PA_bob", "bob")
caller = FakeParticipant("PA_sip", "+15551234567", SIP)
other_agent = FakeParticipant("PA_agent", "agent-2", AGENT)
recorder = FakeParticipant("PA_egress", "EG_rec", EGRESS)


class Job:
    """One job's room, clock and presence watch, with the shutdowns it asked for."""

    def __init__(self, *already_there: FakeParticipant) -> None:
        self.clock = VirtualClock()
        self.room = FakeRoom({p.identity: p for p in already_there})
        self.shutdowns: list[str] = []
        self.presence = RoomPresence(
            room="standup",
            job_id="AJ_1",
            grace_seconds=GRACE,
            max_age_seconds=MAX_AGE,
            clock=self.clock,
            scheduler=self.clock,
            shutdown=self.shutdowns.append,
        )
        watch_room(self.room, self.presence)


def test_the_job_ends_once_the_grace_period_passes_after_the_last_human_leaves() -> None:
    job = Job(alice, bob)
    job.room.leave(alice)
    job.clock.advance(GRACE * 2)
    assert job.shutdowns == []

    job.room.leave(bob)
    job.clock.advance(GRACE - 1)
    assert job.shutdowns == []
    job.clock.advance(1)

    assert job.shutdowns == ["no human in the room for 60s"]


def test_a_human_rejoining_within_the_grace_cancels_it() -> None:
    job = Job(alice)
    job.room.leave(alice)
    job.clock.advance(GRACE - 5)
    job.room.join(bob)
    job.clock.advance(GRACE * 10)

    assert job.shutdowns == []
    assert not job.presence.in_grace


def test_a_page_refresh_never_looks_like_an_empty_room() -> None:
    job = Job(alice)
    job.room.join(alice_after_refresh)  # the new connection arrives before the old one leaves
    job.room.leave(alice)

    assert job.presence.humans == 1
    assert not job.presence.in_grace


def test_agents_and_recorders_do_not_keep_the_agent_in_the_room() -> None:
    job = Job(other_agent, recorder)
    assert job.presence.in_grace

    job.room.join(FakeParticipant("PA_agent3", "agent-3", AGENT))
    job.clock.advance(GRACE)

    assert job.shutdowns == ["no human in the room for 60s"]


def test_a_phone_caller_is_a_human() -> None:
    job = Job()
    job.room.join(caller)
    job.clock.advance(GRACE * 2)

    assert job.shutdowns == []


def test_a_job_dispatched_to_a_room_the_humans_already_left_ends_after_the_grace() -> None:
    job = Job()
    job.clock.advance(GRACE)

    assert job.shutdowns == ["no human in the room for 60s"]


def test_the_maximum_age_ends_the_job_even_with_humans_present() -> None:
    job = Job(alice)
    job.clock.advance(MAX_AGE)

    assert job.shutdowns == ["job reached its maximum age of 14400s"]


def test_the_job_is_shut_down_once_whatever_fires_first() -> None:
    job = Job(alice)
    job.clock.advance(MAX_AGE - GRACE / 2)
    job.room.leave(alice)
    job.clock.advance(GRACE * 2)

    assert len(job.shutdowns) == 1


def test_a_job_ended_by_the_control_plane_does_not_shut_down_again_later() -> None:
    job = Job(alice)
    job.room.leave(alice)
    job.presence.job_ended("dispatch deleted")
    job.clock.advance(MAX_AGE)

    assert job.shutdowns == []


def test_every_transition_is_logged_with_room_job_and_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_worker.presence")
    job = Job(alice)
    job.room.leave(alice)
    job.clock.advance(10)
    job.room.join(bob)
    job.room.leave(bob)
    job.clock.advance(GRACE)

    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "job started",
        "last human left (alice): grace started",
        "human rejoined: grace cancelled",
        "last human left (bob): grace started",
        "job ending",
    ]
    for record in caplog.records:
        assert record.__dict__["room"] == "standup"
        assert record.__dict__["job_id"] == "AJ_1"
        assert record.__dict__["at"] >= 1_700_000_000
    assert caplog.records[1].__dict__["deadline"] == caplog.records[1].__dict__["at"] + GRACE


def test_humans_are_counted_with_the_control_planes_rule_not_a_copy() -> None:
    assert presence_module.__dict__["is_human"] is control_plane.humans.is_human
