"""Agent jobs that fail at once, on in-memory twins: backoff, the crash-loop breaker, metrics."""

from __future__ import annotations

import pytest

from control_plane.reconcile import count_failure, record_job_failed, record_job_lost, record_task_stopped
from control_plane.room import Agent, Human, Room, RoomState
from control_plane.worker_protocol import JobEnded, JobFailureReason, JobOutcome, Respawn
from tests.harness import TwinStack

LIMIT = TwinStack().policy.crash_loop_limit


@pytest.fixture
def stack() -> TwinStack:
    return TwinStack()


def failing_worker_tick(stack: TwinStack, arn: str, outcome: JobOutcome = JobOutcome.FAILURE) -> int:
    """The worker ends every running job in the room at once and reports it, as
    ``agent_worker.session`` does; returns how many jobs it ended."""
    ended = 0
    for dispatch in stack.dispatches():
        if not dispatch.has_running_job:  # type: ignore[attr-defined]
            continue
        stack.livekit.end_jobs("room-1", dispatch.dispatch_id, "JS_FAILED")  # type: ignore[attr-defined]
        stack.timers.send(
            JobEnded(
                task_arn=arn,
                room="room-1",
                job_id=dispatch.jobs[-1].job_id,  # type: ignore[attr-defined]
                outcome=outcome,
                reason=JobFailureReason.SPEECH_UNAVAILABLE if outcome is JobOutcome.FAILURE else None,
                exception_type="APIConnectionError" if outcome is JobOutcome.FAILURE else None,
                duration_seconds=1.5,
            ),
            0,
        )
        ended += 1
    stack.run_due_timers()
    return ended


def run_failing_jobs(stack: TwinStack, arn: str, minutes: int = 15) -> int:
    """Every job fails at once for ``minutes``, with a sweep a minute; returns jobs ended."""
    ended = 0
    for _ in range(minutes * 4):
        ended += failing_worker_tick(stack, arn)
        stack.advance(15)
        stack.heartbeat(arn)
        if int(stack.clock.now()) % 60 < 15:
            stack.sweep()
    return ended


def test_jobs_failing_at_once_for_fifteen_minutes_fail_the_room_and_stop_dispatching(
    stack: TwinStack,
) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()

    ended = run_failing_jobs(stack, arn)

    room = stack.room()
    assert room.state is RoomState.FAILED
    assert ended == LIMIT, "no dispatch after the room failed"
    assert stack.livekit.calls["create_dispatch"] == LIMIT
    assert stack.metrics.count_for("JobFailures", Reason="speech_unavailable") == LIMIT
    assert stack.metrics.counts["CrashLoops"] == 1
    assert stack.metrics.counts["AgentCrashes"] == 0


def test_next_dispatch_after_a_failed_job_waits_out_the_backoff(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()

    failing_worker_tick(stack, arn)
    stack.advance(31)
    stack.heartbeat(arn)
    stack.sweep()  # deletes the dead dispatch; the backoff (10 s) is over, so it dispatches again

    room = stack.room()
    assert len(room.crashes) == 1 and room.state is RoomState.ACTIVE
    assert stack.livekit.calls["create_dispatch"] == 2

    failing_worker_tick(stack, arn)
    respawn = [s for s in stack.timers.sent if isinstance(s.message, Respawn)]
    assert [s.due_at - stack.clock.now() for s in respawn] == [20.0], "second failure: 20 s backoff"
    stack.advance(31)
    stack.sweep()  # the dispatch is forgotten, but the backoff still holds the next one back
    assert stack.livekit.calls["create_dispatch"] == 3, "dispatched once the backoff ran out"


def test_dispatch_is_held_back_while_the_backoff_runs(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    for _ in range(2):
        failing_worker_tick(stack, arn)
        stack.advance(31)
        stack.heartbeat(arn)
        stack.sweep()
    failing_worker_tick(stack, arn)  # third failure within the window: the room failed
    assert stack.room().state is RoomState.FAILED

    stack.advance(600)
    stack.heartbeat(arn)
    stack.sweep()

    assert stack.livekit.calls["create_dispatch"] == LIMIT


def test_new_human_joining_clears_a_job_failure_loop(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    run_failing_jobs(stack, arn)
    assert stack.room().state is RoomState.FAILED

    stack.join("PA_2", identity="bob")
    stack.heartbeat(arn)
    stack.sweep()

    room = stack.room()
    assert room.failed_at is None and room.crashes == ()
    assert room.state is RoomState.ACTIVE
    assert stack.livekit.calls["create_dispatch"] == LIMIT + 1


def kill_jobs(stack: TwinStack, status: str = "JS_FAILED") -> list[str]:
    """The room's running jobs, reported started by their worker, die with no report (OOM, a
    native crash, ``kill -9``): LiveKit marks them ended and their agent leaves; the worker sends
    nothing, and its heartbeats stop listing them. Returns their ids."""
    task = stack.room().agent.task_arn  # type: ignore[union-attr]
    killed = []
    for dispatch in stack.dispatches():
        if dispatch.has_running_job:  # type: ignore[attr-defined]
            [job] = [job.job_id for job in dispatch.jobs]  # type: ignore[attr-defined]
            stack.job_started("room-1", str(task), job)
            stack.livekit.end_jobs("room-1", dispatch.dispatch_id, status)  # type: ignore[attr-defined]
            killed.append(job)
    if killed:
        stack.heartbeat(str(task), {})
    return killed


def test_jobs_killed_without_a_report_back_off_and_trip_the_breaker(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()

    killed = []
    for _ in range(15 * 4):  # every job dies at once, for 15 minutes; a sweep a minute
        killed += kill_jobs(stack)
        stack.advance(15)
        stack.heartbeat(arn)
        if int(stack.clock.now()) % 60 < 15:
            stack.sweep()

    room = stack.room()
    assert room.state is RoomState.FAILED, "the breaker trips as for reported failures"
    assert len(killed) == LIMIT and stack.livekit.calls["create_dispatch"] == LIMIT, "not one per sweep"
    assert stack.metrics.count_for("JobFailures", Reason="unreported") == LIMIT
    assert stack.metrics.counts["CrashLoops"] == 1
    assert set(room.failed_jobs) == set(killed)


def test_the_next_dispatch_after_a_killed_job_waits_out_the_backoff(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    kill_jobs(stack)
    stack.advance(31)
    stack.heartbeat(arn)

    stack.sweep()

    room = stack.room()
    assert len(room.crashes) == 1 and room.next_launch_at == stack.clock.now() + 10
    assert stack.livekit.calls["create_dispatch"] == 1, "held back while the backoff runs"
    assert any(isinstance(s.message, Respawn) for s in stack.timers.sent)
    stack.advance(10)
    assert stack.livekit.calls["create_dispatch"] == 2, "dispatched once it ran out"


def test_an_agent_that_left_while_humans_stay_counts_as_a_failure(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    [job] = kill_jobs(stack, "JS_SUCCESS")
    stack.advance(31)
    stack.heartbeat(arn)

    stack.sweep()

    assert len(stack.room().crashes) == 1 and stack.room().failed_jobs == (job,)


@pytest.mark.parametrize("report_first", [True, False], ids=["report-then-sweep", "sweep-then-report"])
def test_a_job_both_reported_and_seen_dead_by_the_sweep_counts_once(
    stack: TwinStack, report_first: bool
) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    [job] = kill_jobs(stack)
    report = JobEnded(
        task_arn=arn, room="room-1", job_id=job, outcome=JobOutcome.FAILURE, duration_seconds=1.0
    )
    if report_first:
        stack.controller.handle_timer(report)
    stack.advance(31)  # past the backoff: only the job id tells the two sightings apart
    stack.heartbeat(arn)
    stack.sweep()
    if not report_first:
        stack.advance(31)
        stack.controller.handle_timer(report)

    assert len(stack.room().crashes) == 1


def test_two_sweeps_seeing_the_same_dead_job_count_it_once(stack: TwinStack) -> None:
    """Two Lambdas (an overlapping sweep) act on the same listing: the job id, written with
    the count under the room's version condition, makes the second one a no-op."""
    stack.join("PA_1")
    stack.worker_becomes_ready()
    dispatch = stack.room().agent.dispatch_id  # type: ignore[union-attr]
    [job] = kill_jobs(stack)

    first = stack.controller.job_lost("room-1", str(dispatch), job, "JS_FAILED")
    second = stack.controller.job_lost("room-1", str(dispatch), job, "JS_FAILED")

    assert first is not None and second is None
    assert len(stack.room().crashes) == 1
    assert stack.metrics.count_for("JobFailures", Reason="unreported") == 1


def test_job_that_succeeded_does_not_count(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()

    failing_worker_tick(stack, arn, JobOutcome.SUCCESS)

    room = stack.room()
    assert room.crashes == () and room.next_launch_at is None and room.failed_at is None
    assert stack.metrics.counts["JobFailures"] == 0


def test_job_that_ran_long_before_failing_does_not_count(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    job = stack.room().agent.dispatch_id  # type: ignore[union-attr]

    stack.controller.handle_timer(
        JobEnded(
            task_arn=arn,
            room="room-1",
            job_id=str(job),
            outcome=JobOutcome.FAILURE,
            reason=JobFailureReason.LLM_UNAVAILABLE,
            duration_seconds=stack.policy.long_job_seconds,
        )
    )

    assert stack.room().crashes == ()
    assert stack.metrics.count_for("JobFailures", Reason="llm_unavailable") == 1, "still counted as a metric"


def test_redelivered_failure_report_counts_once(stack: TwinStack) -> None:
    stack.join("PA_1")
    arn = stack.worker_becomes_ready()
    report = JobEnded(
        task_arn=arn, room="room-1", job_id="AJ_1", outcome=JobOutcome.FAILURE, duration_seconds=1.0
    )

    stack.controller.handle_timer(report)
    stack.controller.handle_timer(report)

    assert len(stack.room().crashes) == 1


def test_failure_reported_by_another_task_is_ignored(stack: TwinStack) -> None:
    stack.join("PA_1")
    stack.worker_becomes_ready()

    stack.controller.handle_timer(
        JobEnded(
            task_arn="arn:aws:ecs:eu-west-1:1:task/c/other",
            room="room-1",
            job_id="AJ_1",
            outcome=JobOutcome.FAILURE,
            duration_seconds=1.0,
        )
    )

    assert stack.room().crashes == ()


# --- the one rule, as pure functions --------------------------------------------------------------

POLICY = TwinStack().policy
TASK = "arn:aws:ecs:eu-west-1:1:task/c/t1"


@pytest.mark.parametrize(
    ("history", "now", "crashes", "retry_in", "failed"),
    [
        ((), 1000.0, (1000.0,), 10, False),
        ((990.0,), 1000.0, (990.0, 1000.0), 20, False),
        ((980.0, 990.0), 1000.0, (980.0, 990.0, 1000.0), 40, True),
        ((1000.0 - POLICY.crash_window_seconds, 990.0), 1000.0, (990.0, 1000.0), 20, False),
    ],
    ids=["first", "second", "limit", "oldest-left-the-window"],
)
def test_count_failure_is_the_crash_loop_rule(
    history: tuple[float, ...], now: float, crashes: tuple[float, ...], retry_in: int, failed: bool
) -> None:
    update = count_failure(Room(name="r", crashes=history), now, POLICY)

    assert update["crashes"] == crashes
    assert update["next_launch_at"] == now + retry_in
    assert ("failed_at" in update) is failed


def serving(**changes: object) -> Room:
    dispatched_at = changes.pop("dispatched_at", 990.0)
    agent = Agent(
        launch_token="t",
        launch_claimed_at=0.0,
        task_arn=TASK,
        dispatch_id="AD_1",
        dispatched_at=dispatched_at,
    )
    room = Room(name="r", humans={"PA_1": Human(identity="alice", joined_at=0.0)}, agent=agent)
    return room.model_copy(update=changes)


@pytest.mark.parametrize(
    ("room", "task_arn", "duration", "counted"),
    [
        (serving(), TASK, 1.0, True),
        (serving(), "arn:aws:ecs:eu-west-1:1:task/c/other", 1.0, False),
        (serving(), TASK, POLICY.long_job_seconds, False),
        (serving(humans={}), TASK, 1.0, False),
        (serving(next_launch_at=1010.0), TASK, 1.0, False),
        (serving(next_launch_at=990.0), TASK, 1.0, True),
        (serving(failed_at=900.0), TASK, 1.0, False),
        (serving(stop_requested_at=990.0), TASK, 1.0, False),
    ],
    ids=[
        "counted",
        "another-task",
        "ran-long",
        "nobody-there",
        "backoff-running",
        "backoff-over",
        "already-failed",
        "stopping",
    ],
)
def test_which_job_failures_count(room: Room, task_arn: str, duration: float, counted: bool) -> None:
    after = record_job_failed(room, task_arn, "AJ_1", duration, 1000.0, POLICY)

    assert (after is not None and after.crashes == (*room.crashes, 1000.0)) is counted


def test_a_reported_failure_of_a_job_already_counted_is_not_counted_again() -> None:
    assert record_job_failed(serving(failed_jobs=("AJ_1",)), TASK, "AJ_1", 1.0, 1000.0, POLICY) is None


@pytest.mark.parametrize(
    ("room", "dispatch_id", "job_id", "counted"),
    [
        (serving(), "AD_1", "AJ_1", True),
        (serving(failed_jobs=("AJ_1",)), "AD_1", "AJ_1", False),
        (serving(failed_jobs=("AJ_0",)), "AD_1", "AJ_1", True),
        (serving(), "AD_old", "AJ_1", False),
        (serving(humans={}), "AD_1", "AJ_1", False),
        (serving(stop_requested_at=990.0), "AD_1", "AJ_1", False),
        (serving(dispatched_at=1000.0 - POLICY.long_job_seconds), "AD_1", "AJ_1", False),
    ],
    ids=["counted", "same-job", "another-job", "older-dispatch", "nobody-there", "stopping", "ran-long"],
)
def test_which_unreported_job_deaths_count(room: Room, dispatch_id: str, job_id: str, counted: bool) -> None:
    after = record_job_lost(room, dispatch_id, job_id, 1000.0, POLICY)

    assert (after is not None and after.crashes == (*room.crashes, 1000.0)) is counted
    if after is not None:
        assert after.failed_jobs[-1] == job_id


def test_a_task_crash_whose_job_the_sweep_counted_already_is_not_counted_again() -> None:
    """The worker died with its job: the sweep may see the job dead in LiveKit before ECS's
    STOPPED event arrives. One incident, one count."""
    room = serving(failed_jobs=("AJ_1",), crashes=(990.0,))
    room = room.model_copy(update={"agent": room.agent.model_copy(update={"job_id": "AJ_1"})})  # type: ignore[union-attr]

    after = record_task_stopped(room, TASK, None, True, 1000.0, POLICY)

    assert after is not None and after.agent is not None and after.agent.task_stopped_at == 1000.0
    assert after.crashes == (990.0,)
