"""The scheduled sweep on in-memory twins: what it heals, what it cleans, and what it leaves alone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import pytest

from control_plane.ports import Dispatch, ObservedTaskState
from control_plane.room import RoomState
from control_plane.worker_protocol import Respawn, WorkerRecord, WorkerStatus
from tests.harness import AGENT_NAME, POOL_POLICY, SWEEP_POLICY, TwinStack


@pytest.fixture
def stack() -> TwinStack:
    return TwinStack()


@pytest.fixture
def audited() -> TwinStack:
    """Every room audited every sweep. LiveKit never counts agents in ``num_participants``, so
    what only our agent or its dispatch shows (a job that ended unreported, a stray dispatch, a
    leftover agent in a room nobody else is in) is found on the room's audit turn."""
    return TwinStack(
        sweep_policy=replace(SWEEP_POLICY, audit_period_seconds=SWEEP_POLICY.sweep_interval_seconds)
    )


def active_room(stack: TwinStack, room: str = "room-1", sid: str = "PA_1") -> str:
    """A room with one human and its agent dispatched; returns the task ARN."""
    stack.join(sid, room=room)
    return stack.worker_becomes_ready(room)


def lose_timers(stack: TwinStack) -> None:
    stack.timers.sent.clear()


# --- 1. rooms from the sparse index -------------------------------------------------------------


def test_grace_period_whose_timer_was_lost_ends_at_the_next_sweep(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.leave("PA_1")
    lose_timers(stack)

    stack.advance(59)
    stack.sweep()
    assert stack.room().state is RoomState.GRACE, "a sweep before the deadline changes nothing"

    stack.advance(1)
    stack.sweep()

    assert stack.room().state is RoomState.CLOSED
    assert stack.runner.tasks[arn].running is False
    assert stack.dispatches() == []
    assert stack.metrics.counts["GraceExpiries"] == 1


def test_human_waiting_out_a_launch_backoff_gets_an_agent_even_if_the_respawn_message_is_lost(
    stack: TwinStack,
) -> None:
    stack.runner.fail_next_launches = 1
    stack.join("PA_1")
    lose_timers(stack)

    stack.advance(10)
    stack.sweep()

    assert len(stack.runner.running()) == 1
    assert stack.room().state is RoomState.STARTING


def test_settled_rooms_cost_the_sweep_nothing(stack: TwinStack) -> None:
    active_room(stack)
    stack.leave("PA_1")
    stack.advance(61)
    assert stack.room().state is RoomState.CLOSED
    stack.livekit.close_room("room-1")
    stack.livekit.calls.clear()

    report = stack.sweep()

    assert report.rooms_total == 0
    assert set(stack.livekit.calls) == {"list_rooms"}


# --- 2. dispatch hygiene -------------------------------------------------------------------------


def test_duplicate_dispatch_is_deleted_and_the_rooms_own_kept(audited: TwinStack) -> None:
    active_room(audited)
    recorded = audited.room().agent.dispatch_id
    audited.advance(5)
    audited.livekit.create_dispatch("room-1", AGENT_NAME, "{}")  # a second one, e.g. a stray retry

    audited.sweep()

    assert [d.dispatch_id for d in audited.dispatches()] == [recorded]
    assert audited.metrics.count_for("DispatchesDeleted", Reason="duplicate") == 1


def test_without_a_running_job_the_newest_dispatch_is_kept() -> None:
    """Jobless dispatches in an empty room we do not track are found on the room's audit turn."""
    stack = TwinStack(sweep_policy=replace(SWEEP_POLICY, audit_period_seconds=60))
    stack.livekit.open_room("room-x")
    old = stack.livekit.create_dispatch("room-x", AGENT_NAME, "{}")
    stack.advance(20)
    new = stack.livekit.create_dispatch("room-x", AGENT_NAME, "{}")

    stack.sweep()

    assert [d.dispatch_id for d in stack.livekit.list_dispatches("room-x")] == [new.dispatch_id]
    assert stack.livekit.get_dispatch("room-x", old.dispatch_id) is None


def test_dead_dispatch_is_replaced_once_its_failures_backoff_is_over(audited: TwinStack) -> None:
    arn = active_room(audited)
    dead = audited.room().agent.dispatch_id
    audited.livekit.end_jobs("room-1", dead, "JS_FAILED")
    audited.advance(31)
    audited.heartbeat(arn)

    audited.sweep()
    assert audited.dispatches() == [], "its job died unreported: a failure, so the backoff comes first"
    audited.advance(10)

    [fresh] = audited.dispatches()
    assert fresh.dispatch_id != dead and fresh.has_running_job
    assert audited.room().agent.dispatch_id == fresh.dispatch_id
    assert audited.room().state is RoomState.ACTIVE
    assert audited.metrics.count_for("DispatchesDeleted", Reason="no_live_job") == 1


def test_jobless_dispatch_is_not_recreated_while_no_worker_is_ready(audited: TwinStack) -> None:
    arn = active_room(audited)
    dead = audited.room().agent.dispatch_id
    audited.livekit.end_jobs("room-1", dead, "JS_SUCCESS")
    audited.advance(31)
    worker = audited.store.get_worker(arn)
    audited.store.put_worker(
        worker.model_copy(update={"status": WorkerStatus.DRAINING, "heartbeat_at": audited.clock.now()})
    )

    audited.sweep()

    assert audited.livekit.get_dispatch("room-1", dead) is None
    assert audited.livekit.calls["create_dispatch"] == 1, "only the original dispatch was ever created"


def test_young_jobless_dispatch_gets_time_to_receive_its_job(stack: TwinStack) -> None:
    stack.livekit.open_room("room-x")
    young = stack.livekit.create_dispatch("room-x", AGENT_NAME, "{}")

    stack.sweep()

    assert stack.livekit.get_dispatch("room-x", young.dispatch_id) is not None


NO_AUDIT = replace(SWEEP_POLICY, audit_period_seconds=10**9)


def test_a_job_livekit_dropped_is_dispatched_again_one_sweep_past_the_settle_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LiveKit offers a job once: with no worker answering (a frozen one), the dispatch stays
    jobless for good. No job reported started within the settle time makes the sweep look,
    well before the room's audit turn."""
    stack = TwinStack(sweep_policy=NO_AUDIT)
    stack.join("PA_1")
    with monkeypatch.context() as frozen:  # the worker is ready, but LiveKit hears no answer
        frozen.setattr(stack.livekit, "register_worker", lambda agent_name: None)
        task = stack.worker_becomes_ready()
    stack.livekit.register_worker(AGENT_NAME)  # it answers again, too late for that job
    [dropped] = stack.dispatches()
    assert dropped.jobs == ()
    stack.advance(29)
    stack.sweep()
    assert stack.room().agent.dispatch_id == dropped.dispatch_id, "its job may still be coming"

    stack.advance(2)
    stack.sweep()

    [fresh] = stack.dispatches()
    assert fresh.dispatch_id != dropped.dispatch_id and fresh.has_running_job
    assert stack.room().agent.dispatch_id == fresh.dispatch_id
    assert stack.room().crashes == (), "no job ever ran: nothing failed"
    assert stack.metrics.count_for("DispatchesDeleted", Reason="no_live_job") == 1
    stack.job_started("room-1", task, "AJ_new")
    stack.advance(60)
    assert stack.sweep().rooms_inspected == 0, "its job reported: quiet again"


def test_a_job_whose_start_report_is_lost_is_adopted_never_dispatched_twice() -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    stack.join("PA_1")
    task = stack.worker_becomes_ready()
    job = stack.livekit.hand_job("room-1", task, "AJ_late")  # the worker took it; its report is lost
    stack.heartbeat(task, {"room-1": "AJ_late"})
    stack.advance(31)

    stack.sweep()

    agent = stack.room().agent
    assert (agent.job_id, agent.task_arn) == (job.job_id, task)
    assert [d.jobs for d in stack.dispatches()] == [(job,)]
    assert stack.livekit.calls["create_dispatch"] == 1
    assert stack.metrics.counts["JobStartsAdopted"] == 1
    stack.advance(60)
    assert stack.sweep().rooms_inspected == 0, "adopted: the room costs nothing again"


@pytest.mark.parametrize(
    ("known_room", "idle_limit"),
    [(False, 300), (True, 60)],
    ids=["never-tracked-room-after-agent-ttl", "closed-room-after-grace"],
)
def test_leftover_dispatch_in_a_room_without_humans_is_deleted_after_its_idle_limit(
    audited: TwinStack, known_room: bool, idle_limit: int
) -> None:
    if known_room:
        active_room(audited, room="room-x")
        audited.leave("PA_1", room="room-x")
        audited.advance(61)
        assert audited.room("room-x").state is RoomState.CLOSED
    audited.livekit.register_worker(AGENT_NAME)
    audited.livekit.open_room("room-x")
    leftover = audited.livekit.create_dispatch("room-x", AGENT_NAME, "{}")

    audited.advance(idle_limit - 1)
    audited.sweep()
    assert audited.livekit.get_dispatch("room-x", leftover.dispatch_id) is not None

    audited.advance(2)
    audited.sweep()
    assert audited.livekit.get_dispatch("room-x", leftover.dispatch_id) is None
    assert audited.metrics.count_for("DispatchesDeleted", Reason="no_humans") == 1


def test_leftover_dispatch_stays_while_humans_are_in_the_room(stack: TwinStack) -> None:
    stack.livekit.register_worker(AGENT_NAME)
    stack.livekit.add_participant("room-x", "PA_9", "someone")
    kept = stack.livekit.create_dispatch("room-x", AGENT_NAME, "{}")
    stack.advance(3600)

    stack.sweep()

    assert stack.livekit.get_dispatch("room-x", kept.dispatch_id) is not None


def test_dispatches_of_other_agents_are_never_touched(stack: TwinStack) -> None:
    stack.livekit.open_room("room-x")
    other = stack.livekit.create_dispatch("room-x", "someone-elses-agent", "{}")
    stack.advance(3600)

    stack.sweep()

    assert stack.livekit.get_dispatch("room-x", other.dispatch_id) is not None


# --- 3. participants -----------------------------------------------------------------------------


def test_missed_join_keeps_the_agent_when_the_known_human_leaves(stack: TwinStack) -> None:
    active_room(stack)
    stack.livekit.add_participant("room-1", "PA_2", "bob")  # its webhook was lost
    stack.leave("PA_1")
    assert stack.room().state is RoomState.GRACE

    stack.sweep()

    room = stack.room()
    assert set(room.humans) == {"PA_2"}
    assert room.state is RoomState.ACTIVE
    assert stack.runner.run_task_calls == 1
    assert stack.metrics.count_for("ParticipantsReconciled", Change="joined") == 1


def test_missed_leave_starts_the_grace_period(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.livekit.remove_participant("room-1", "PA_1")  # its webhook was lost
    stack.advance(20)

    stack.sweep()

    assert stack.room().state is RoomState.GRACE
    stack.advance(60)
    assert stack.room().state is RoomState.CLOSED
    assert stack.runner.tasks[arn].running is False


def test_a_join_newer_than_the_listing_is_not_undone(stack: TwinStack) -> None:
    stack.livekit.open_room("room-1")
    stack.deliver("participant_joined", sid="PA_1")  # LiveKit's list does not show PA_1 yet

    stack.sweep()
    assert "PA_1" in stack.room().humans

    stack.advance(20)
    stack.sweep()
    assert stack.room().humans == {}, "still not listed well after joining: gone"


def test_room_livekit_no_longer_has_is_closed_and_its_agent_removed(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.livekit.close_room("room-1")  # room_finished webhook lost
    stack.advance(20)

    stack.sweep()

    assert stack.room().state is RoomState.CLOSED
    assert stack.runner.tasks[arn].running is False
    assert stack.metrics.counts["RoomsGone"] == 1


def test_new_livekit_session_under_the_same_name_replaces_the_old_agent(stack: TwinStack) -> None:
    old_task = active_room(stack)
    stack.livekit.close_room("room-1")
    stack.livekit.add_participant("room-1", "PA_7", "carol")  # a new session; webhooks lost
    stack.advance(20)

    stack.sweep()

    room = stack.room()
    assert room.sid == stack.livekit.get_room("room-1").sid
    assert set(room.humans) == {"PA_7"}
    assert stack.runner.tasks[old_task].running is False
    assert [t.arn for t in stack.runner.running()] == [room.agent.task_arn]


# --- 4. tasks ------------------------------------------------------------------------------------


def test_orphan_task_is_stopped_once_it_is_past_its_start_time(stack: TwinStack) -> None:
    now = stack.clock.now()
    young = stack.runner.start_foreign("nowhere", "tok-young", created_at=now - 60)
    old = stack.runner.start_foreign("nowhere", "tok-old", created_at=now - 301)

    stack.sweep()

    assert stack.runner.tasks[young].running is True
    assert stack.runner.tasks[old].running is False
    assert stack.metrics.count_for("TasksStopped", Reason="orphan") == 1


def test_launch_not_yet_recorded_is_not_an_orphan(stack: TwinStack) -> None:
    """A launcher that died after RunTask: the room's launch token still claims the task."""
    stack.join("PA_1")
    room = stack.room()
    stack.store.save(
        room.model_copy(update={"agent": room.agent.model_copy(update={"task_arn": None})}), room.version
    )
    stack.advance(20)

    stack.sweep()

    assert len(stack.runner.running()) == 1
    assert stack.metrics.counts["TasksStopped"] == 0


def test_silent_worker_is_stopped_and_its_room_gets_a_new_agent(stack: TwinStack) -> None:
    hung = active_room(stack)
    stack.silence(hung)
    stack.advance(46)

    stack.sweep()

    assert stack.runner.tasks[hung].running is False
    assert stack.metrics.count_for("TasksStopped", Reason="stale_heartbeat") == 1
    assert len(stack.room().crashes) == 1, "a hung worker is a failed agent"
    stack.advance(10)
    assert [t.room for t in stack.runner.running()] == ["room-1"]


def test_task_that_never_becomes_ready_is_stopped(stack: TwinStack) -> None:
    stack.join("PA_1")
    stuck = stack.task_of()
    stack.advance(301)

    stack.sweep()

    assert stack.runner.tasks[stuck].running is False
    assert stack.metrics.count_for("TasksStopped", Reason="never_ready") == 1


def idle_worker(stack: TwinStack, created_ago: float = 600) -> str:
    launched_at = stack.clock.now() - created_ago
    arn = stack.runner.start_foreign("gone-room", "tok-idle", created_at=launched_at)
    stack.store.record_task_state(
        ObservedTaskState(arn, version=1, last_status="RUNNING", seen_at=launched_at)
    )
    stack.store.put_worker(
        WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=stack.clock.now())
    )
    return arn


def test_idle_worker_beyond_the_warm_pool_is_drained_then_stopped(stack: TwinStack) -> None:
    arn = idle_worker(stack)

    stack.sweep()
    assert stack.store.get_worker(arn).draining is True
    assert stack.runner.tasks[arn].running is True, "first asked to drain"

    stack.advance(60)
    stack.heartbeat(arn)
    stack.sweep()
    assert stack.runner.tasks[arn].running is False
    assert stack.metrics.count_for("TasksStopped", Reason="idle") == 1


def test_warm_pool_keeps_its_idle_workers() -> None:
    stack = TwinStack(pool=replace(TwinStack().pool, warm_tasks=1))
    kept = idle_worker(stack, created_ago=600)
    surplus = idle_worker(stack, created_ago=900)

    stack.sweep()

    assert stack.store.get_worker(kept).draining is False
    assert stack.store.get_worker(surplus).draining is True, "the older one goes"


def test_agent_past_the_maximum_age_is_stopped_logged_and_counted(
    stack: TwinStack, caplog: pytest.LogCaptureFixture
) -> None:
    old = active_room(stack)
    stack.advance(4 * 3600 + 1)
    stack.heartbeat(old)

    with caplog.at_level(logging.WARNING):
        stack.sweep()

    assert stack.runner.tasks[old].running is False
    assert stack.metrics.count_for("TasksStopped", Reason="max_age") == 1
    assert any(r.getMessage() == "stopping agent task" and r.reason == "max_age" for r in caplog.records)
    [fresh] = stack.runner.running()
    assert fresh.room == "room-1", "the humans still there get a fresh agent"
    assert stack.room().crashes == (), "age is not a crash"


def idle_for(stack: TwinStack, hours: float) -> None:
    """Time passes with the scheduled sweep every ten minutes (workers keep heartbeating)."""
    for _ in range(round(hours * 6)):
        stack.advance(600)
        stack.sweep()


def warm_worker(stack: TwinStack, capacity: int = 1) -> str:
    stack.controller.capacity.replenish()
    [warm] = stack.pool_tasks()
    stack.pool_worker_becomes_ready(warm, capacity=capacity)
    return warm


def test_a_warm_worker_idle_past_the_maximum_age_keeps_the_room_it_takes() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=1))
    warm = warm_worker(stack)
    idle_for(stack, hours=5)  # a quiet night: the task is older than MAX_AGENT_AGE_SECONDS
    stack.join("PA_1")
    stack.job_started("room-1", warm)
    dispatched = stack.room().agent.dispatch_id

    stack.advance(60)
    stack.sweep()

    assert stack.runner.tasks[warm].running, "the agent is a minute old: its task's age does not count"
    assert stack.metrics.count_for("TasksStopped", Reason="max_age") == 0
    assert stack.room().agent.task_arn == warm and stack.room().agent.dispatch_id == dispatched
    assert stack.metrics.counts["OldestAgentAgeSeconds"] == 60, "the agent's age, not the task's"


def test_each_room_on_a_shared_worker_is_judged_by_its_own_agents_age() -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=1, slots_per_task=2, jobs_per_task=2))
    warm = warm_worker(stack, capacity=2)
    stack.join("PA_a", room="room-a")
    stack.job_started("room-a", warm, "AJ_a")
    old = stack.room("room-a").agent.dispatch_id
    idle_for(stack, hours=3)
    stack.join("PA_b", identity="bob", room="room-b")
    stack.job_started("room-b", warm, "AJ_b")
    young = stack.room("room-b").agent.dispatch_id
    assert stack.task_of("room-b") == warm

    idle_for(stack, hours=1 + 1 / 6)  # room-a's agent is now past 4 h, room-b's about 1 h

    assert stack.runner.tasks[warm].running, "room-b's young agent keeps its worker"
    assert stack.metrics.count_for("TasksStopped", Reason="max_age") == 0
    assert stack.metrics.count_for("AgentsRetired", Reason="max_age") == 1
    assert stack.room("room-b").agent.dispatch_id == young
    assert stack.livekit.get_dispatch("room-a", old) is None, "the old agent's job is ended"
    fresh = stack.room("room-a").agent
    assert fresh is not None and fresh.dispatch_id != old, "its humans get a fresh agent"


def test_task_that_stopped_without_its_event_reaching_us_is_handled_by_the_sweep(stack: TwinStack) -> None:
    arn = active_room(stack)
    stack.advance(31)  # older than a listing's lag behind RunTask
    stack.runner.crash(arn, "EssentialContainerExited", exit_code=1)  # the STOPPED event is lost

    stack.sweep()

    assert stack.metrics.counts["MissedTaskStops"] == 1
    assert len(stack.room().crashes) == 1
    assert any(isinstance(s.message, Respawn) for s in stack.timers.sent)


def test_worker_record_of_a_task_ecs_no_longer_runs_leaves_the_index(stack: TwinStack) -> None:
    arn = idle_worker(stack)
    stack.runner.stop(arn, "by hand")
    stack.advance(46)

    stack.sweep()

    assert stack.store.get_worker(arn).status is WorkerStatus.STOPPED
    assert arn not in {w.task_arn for w in stack.store.live_workers()}


# --- 5. metrics ----------------------------------------------------------------------------------


def test_sweep_reports_gauges_and_what_it_cleaned(stack: TwinStack) -> None:
    active_room(stack, room="room-a", sid="PA_a")
    active_room(stack, room="room-b", sid="PA_b")
    stack.leave("PA_b", room="room-b")
    stack.runner.start_foreign("nowhere", "tok", created_at=stack.clock.now() - 400)
    stack.advance(10)

    report = stack.sweep()

    values = stack.metrics
    assert values.count_for("Rooms", State="active") == 1
    assert values.count_for("Rooms", State="grace") == 1
    assert values.count_for("Rooms", State="failed") == 0
    assert values.counts["ActiveAgents"] == 2
    assert values.counts["RunningTasks"] == 3
    assert values.counts["OldestAgentAgeSeconds"] == 10, "the agents' age, not the orphan task's 400 s"
    assert values.count_for("TasksStopped", Reason="orphan") == 1
    assert values.counts["SweepDurationSeconds"] > 0
    assert report.counts["TasksStopped[Reason=orphan]"] == 1
    assert report.complete and report.rooms_visited == report.rooms_total == 2


# --- 6. safety -----------------------------------------------------------------------------------


def test_livekit_outage_changes_nothing_destructive_and_the_next_sweep_catches_up(audited: TwinStack) -> None:
    arn = active_room(audited)
    audited.livekit.close_room("room-1")
    audited.livekit.open_room("room-x")
    leftover = audited.livekit.create_dispatch("room-x", AGENT_NAME, "{}")
    audited.advance(400)
    audited.heartbeat(arn)
    audited.livekit.set_down(True)

    report = audited.sweep()

    assert report.complete
    assert audited.runner.tasks[arn].running is True
    assert audited.room().state is not RoomState.CLOSED
    assert audited.livekit.get_dispatch("room-x", leftover.dispatch_id) is not None
    assert audited.metrics.count_for("SweepListingFailures", Source="livekit") == 1

    audited.livekit.set_down(False)
    audited.sweep()

    assert audited.room().state is RoomState.CLOSED
    assert audited.runner.tasks[arn].running is False
    assert audited.livekit.get_dispatch("room-x", leftover.dispatch_id) is None


def test_throttled_ecs_listing_stops_nothing_until_it_answers(stack: TwinStack) -> None:
    orphan = stack.runner.start_foreign("nowhere", "tok", created_at=stack.clock.now() - 400)
    stack.runner.listing_fails = True

    stack.sweep()
    assert stack.runner.tasks[orphan].running is True
    assert stack.metrics.count_for("SweepListingFailures", Source="ecs") == 1

    stack.runner.listing_fails = False
    stack.sweep()
    assert stack.runner.tasks[orphan].running is False


def test_failure_in_one_room_does_not_stop_the_others(
    stack: TwinStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("room-a", "room-b"):
        active_room(stack, room=name, sid=f"PA_{name}")
        stack.leave(f"PA_{name}", room=name)
    lose_timers(stack)
    stack.advance(61)
    list_dispatches = stack.livekit.list_dispatches

    def broken_for_room_a(room: str) -> list[Dispatch]:
        if room == "room-a":
            raise RuntimeError("unexpected answer")
        return list_dispatches(room)

    monkeypatch.setattr(stack.livekit, "list_dispatches", broken_for_room_a)

    stack.sweep()

    assert stack.room("room-b").state is RoomState.CLOSED
    assert stack.metrics.counts["SweepErrors"] == 1


def test_sweep_stops_before_the_deadline_and_the_next_one_resumes_where_it_stopped(stack: TwinStack) -> None:
    names = [f"room-{i}" for i in range(6)]
    for name in names:
        active_room(stack, room=name, sid=f"PA_{name}")
        stack.livekit.remove_participant(name, f"PA_{name}")  # every leave webhook was lost
    stack.advance(20)

    def budget(rooms: int) -> Callable[[], float]:
        """Lambda time for ``rooms`` room starts, then below the safety margin."""
        calls = iter(range(10_000))
        return lambda: 60.0 if next(calls) < rooms else 5.0

    healed_per_sweep = []
    for _ in range(3):
        report = stack.sweep(budget(2))
        healed_per_sweep.append([n for n in names if stack.room(n).state is RoomState.GRACE])
        assert (report.rooms_visited, report.complete) == (2, False)

    assert healed_per_sweep == [names[:2], names[:4], names], "each sweep picks up where the last stopped"
    assert stack.store.get_sweep_cursor() == "room-0", "and then wraps around"
    assert stack.metrics.counts["SweepIncomplete"] == 3

    report = stack.sweep()
    assert report.complete
    assert stack.store.get_sweep_cursor() is None, "a sweep that gets through leaves no cursor"
