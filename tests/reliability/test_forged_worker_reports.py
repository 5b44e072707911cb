"""Forged worker reports: a compromised agent task lying about another room's job.

A task may send the timer queue only reports naming itself (SQS's ``SenderId``), but it can
name any room in them. Its ``JobStarted`` for a victim room must not move the victim's agent
onto itself (after which its own crash would delete the victim's working dispatch and count a
crash), and its ``JobEnded`` failures must not crash-loop the victim into ``failed``: a claim
that changes a room's record is believed only once LiveKit confirms it (the room's dispatch
holds the job, accepted as the reporting task). The genuine reports still work, and a repeated
one costs no LiveKit call.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from control_plane.worker_protocol import TIMER_MESSAGE, JobEnded, JobFailureReason, JobOutcome, JobStarted
from tests.harness import TwinStack
from tests.reliability.report import Figures

VICTIM, ATTACKER_ROOM = "victim", "attacker"


def two_rooms() -> tuple[TwinStack, str, str]:
    """The victim's agent runs its job on task A; the attacker's task B hosts its own room."""
    stack = TwinStack()
    stack.join("PA_1", room=VICTIM)
    stack.join("PA_2", identity="mallory", room=ATTACKER_ROOM)
    victim_task = stack.worker_becomes_ready(VICTIM)
    attacker_task = stack.worker_becomes_ready(ATTACKER_ROOM)
    stack.job_started(VICTIM, victim_task, "AJ_VICTIM")
    stack.job_started(ATTACKER_ROOM, attacker_task, "AJ_ATTACKER")
    return stack, victim_task, attacker_task


def report(stack: TwinStack, message: JobStarted | JobEnded) -> None:
    stack.controller.handle_timer(message)


def test_a_forged_job_start_for_another_room_moves_nothing_and_its_crash_costs_the_victim_nothing(
    figures: Figures,
) -> None:
    stack, victim_task, attacker_task = two_rooms()
    victim = stack.room(VICTIM)
    [dispatch] = stack.dispatches(VICTIM)
    forged = [
        JobStarted(task_arn=attacker_task, room=VICTIM, room_sid=victim.sid, job_id=job_id)
        for job_id in ("AJ_VICTIM", "AJ_FORGED")  # the victim's real job id, and a made-up one
    ]

    for message in forged:
        report(stack, message)
    stack.crash(ATTACKER_ROOM)  # the attacker's task exits 1

    after = stack.room(VICTIM)
    assert after.agent is not None
    assert (after.agent.task_arn, after.agent.job_id) == (victim_task, "AJ_VICTIM"), "the slot stayed"
    assert stack.dispatches(VICTIM) == [dispatch], "the victim's working dispatch is untouched"
    assert after.crashes == () and after.failed_at is None
    worker = stack.store.get_worker(attacker_task)
    assert worker is not None and VICTIM not in worker.rooms()
    assert stack.metrics.count_for("JobReportsUnconfirmed") == len(forged)
    figures.record(
        "forged JobStarted for another room, then the forger crashes",
        "ignored: the victim's agent, dispatch and crash count unchanged",
        forged=len(forged),
        moved=0,
        crashes=len(after.crashes),
    )


def test_forged_job_failures_for_another_room_never_crash_loop_it(figures: Figures) -> None:
    stack, victim_task, attacker_task = two_rooms()
    victim = stack.room(VICTIM)
    report(stack, JobStarted(task_arn=attacker_task, room=VICTIM, room_sid=victim.sid, job_id="AJ_VICTIM"))
    failures = stack.policy.crash_loop_limit + 1

    for _ in range(failures):
        report(
            stack,
            JobEnded(
                task_arn=attacker_task,
                room=VICTIM,
                job_id="AJ_VICTIM",
                outcome=JobOutcome.FAILURE,
                reason=JobFailureReason.ENTRYPOINT_ERROR,
                duration_seconds=1.0,
            ),
        )
        stack.advance(600)  # past any backoff, so each one would count

    after = stack.room(VICTIM)
    assert after.crashes == () and after.failed_at is None
    assert after.agent is not None and after.agent.task_arn == victim_task
    assert len(stack.dispatches(VICTIM)) == 1
    figures.record(
        "forged JobEnded failures for another room",
        "not counted: the room never enters failed",
        forged=failures + 1,
        crashes=len(after.crashes),
    )


def test_genuine_reports_still_move_the_agent_count_failures_and_cost_one_call_each(figures: Figures) -> None:
    """A genuine start is confirmed (one dispatch listing) and recorded; the same report again
    changes nothing and asks LiveKit nothing; a genuine failure then counts."""
    stack, _, _ = two_rooms()
    stack.join("PA_3", identity="carol", room="third")
    mover = stack.worker_becomes_ready("third")
    calls = stack.livekit.calls["list_dispatches"]

    stack.job_started("third", mover, "AJ_THIRD")
    confirmed_calls = stack.livekit.calls["list_dispatches"] - calls
    stack.timers.send(
        JobStarted(task_arn=mover, room="third", room_sid=stack.room("third").sid, job_id="AJ_THIRD"), 0
    )
    stack.run_due_timers()
    repeat_calls = stack.livekit.calls["list_dispatches"] - calls - confirmed_calls
    report(
        stack,
        JobEnded(
            task_arn=mover,
            room="third",
            job_id="AJ_THIRD",
            outcome=JobOutcome.FAILURE,
            reason=JobFailureReason.ENTRYPOINT_ERROR,
            duration_seconds=1.0,
        ),
    )

    after = stack.room("third")
    assert after.agent is not None and after.agent.job_id == "AJ_THIRD"
    assert len(after.crashes) == 1, "a genuine failure still counts"
    assert repeat_calls == 0, "a report that changes nothing is not confirmed again"
    assert stack.metrics.count_for("JobReportsUnconfirmed") == 0
    figures.record(
        "genuine JobStarted, repeated, then a genuine failure",
        "recorded once; the repeat asks LiveKit nothing; the failure counts",
        livekit_calls_first=confirmed_calls,
        livekit_calls_repeat=repeat_calls,
        crashes=len(after.crashes),
    )


def test_a_job_start_without_its_room_session_is_refused() -> None:
    """``room_sid`` ties a report to one session of the room; without it there is nothing to tie."""
    body = '{"kind": "job_started", "task_arn": "arn:task/t", "room": "r", "job_id": "AJ_1"}'

    with pytest.raises(ValidationError, match="room_sid"):
        TIMER_MESSAGE.validate_json(body)
