"""A Hypothesis state machine over several sessions of one room name, on the twins (virtual clock).

LiveKit's side is played faithfully: humans join, leave, abort and refresh (a new sid for the
same identity, then the old sid leaves); sessions open and finish under the same name, each
with a later ``creation_time``. Every webhook LiveKit emits waits in an outbox and is then
delivered in order or out of order, during a LiveKit outage (503: LiveKit retries it later, so
it may arrive after a newer session started), twice, or never. Timers are lost, delivered twice
or early; agent tasks crash and their ECS events are redelivered; sweeps run in between.

After every step: at most one agent for the room, the record never returns to an older session,
an older session's event changes nothing, and a redelivered trigger performs nothing. At each
``settle`` (LiveKit's retries all in, grace + 5 s passed, one sweep more if anything was lost):
an agent exactly when humans are there.

This extends ``tests/unit/test_invariants.py`` (one session, joins, leaves, waits, replays)
to sessions, reordering, loss, outages, timers, crashes and sweeps.
"""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from control_plane.events import LiveKitEvent
from control_plane.humans import is_human
from control_plane.ports import LiveKitUnavailable, LiveRoom
from control_plane.worker_protocol import GraceExpired, WorkerStatus
from tests.harness import TwinStack, event
from tests.reliability.invariants import (
    GRACE_SLACK_SECONDS,
    EffectMeter,
    agent_for_every_room_with_humans,
    at_most_one_agent,
    holds,
    no_agent_without_humans,
    repeated_effects,
    twin_views,
)
from tests.reliability.report import Figures

ROOM = "room-1"
IDENTITIES = ("alice", "bob", "carol")
MAX_SESSIONS = 4
HEARTBEAT_EVERY_SECONDS = 10  # a live worker re-writes its record at least this often
STOPPED_VERSION = 3  # ECS task versions: PENDING 1, RUNNING 2, STOPPED 3
pick = st.integers(min_value=0, max_value=7)

TALLY: Counter[str] = Counter()


class RoomSessions(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = TwinStack()
        self.grace = self.stack.policy.grace_seconds
        self.meter = EffectMeter(self.stack)
        self.sessions: list[LiveRoom] = []  # in creation order
        self.outbox: list[LiveKitEvent] = []  # emitted by LiveKit, not yet delivered (or to retry)
        self.delivered: list[LiveKitEvent] = []
        self.stopped_tasks: list[str] = []
        self.lost = False  # an event or timer was lost since the last settle
        self.timer_lost_at: float | None = None
        self.swept_at: float | None = None
        self.newest_session = -1
        self.sids = itertools.count(1)
        TALLY["examples"] += 1

    # --- LiveKit's side ---------------------------------------------------------------------

    def live(self) -> LiveRoom | None:
        return self.stack.livekit.get_room(ROOM)

    def follow_livekit(self) -> None:
        """LiveKit opens a session on its own when a dispatch is created in a closed room
        (``auto_create``); it is a session like any other, and its room_started is sent."""
        live = self.live()
        if live is not None and self.session_of(live.sid) < 0:
            self.sessions.append(live)
            self.emit("room_started", live)
            TALLY["sessions opened by a dispatch"] += 1

    def present(self) -> list[tuple[str, str]]:
        """The humans in the room (the agent's own participant is there too once it has a job)."""
        participants = self.stack.livekit.list_participants(ROOM)
        return sorted((p.sid, p.identity) for p in participants if is_human(p.kind))

    def emit(self, kind: str, live: LiveRoom, sid: str | None = None, identity: str = "") -> None:
        self.outbox.append(
            event(
                kind,
                room=ROOM,
                room_sid=live.sid,
                room_created_at=live.created_at,
                sid=sid,
                identity=identity,
                at=self.stack.clock.now(),
                departure_timeout=self.grace + 10,
            )
        )
        TALLY["events emitted"] += 1

    def open_session(self) -> LiveRoom:
        self.advance(1)  # each session is created at a later second than the last
        live = self.stack.livekit.open_room(ROOM, departure_timeout=self.grace + 10)
        self.sessions.append(live)
        self.emit("room_started", live)
        TALLY["sessions"] += 1
        return live

    @precondition(lambda self: self.live() is None and len(self.sessions) < MAX_SESSIONS)
    @rule()
    def start_session(self) -> None:
        self.open_session()

    @precondition(lambda self: self.live() is not None or len(self.sessions) < MAX_SESSIONS)
    @rule(identity=st.sampled_from(IDENTITIES))
    def join(self, identity: str) -> None:
        live = self.live() or self.open_session()  # a join opens a closed room (auto_create)
        sid = f"PA_{next(self.sids)}"
        self.stack.livekit.add_participant(ROOM, sid, identity)
        self.emit("participant_joined", live, sid, identity)

    @precondition(lambda self: self.present())
    @rule(which=pick, aborted=st.booleans())
    def leave(self, which: int, aborted: bool) -> None:
        live = self.live()
        assert live is not None
        sid, identity = self.present()[which % len(self.present())]
        self.stack.livekit.remove_participant(ROOM, sid)
        self.emit("participant_connection_aborted" if aborted else "participant_left", live, sid, identity)

    @precondition(lambda self: self.present())
    @rule(which=pick)
    def refresh(self, which: int) -> None:
        """A page refresh: the same identity joins with a new sid, then the old sid leaves."""
        live = self.live()
        assert live is not None
        old, identity = self.present()[which % len(self.present())]
        new = f"PA_{next(self.sids)}"
        self.stack.livekit.add_participant(ROOM, new, identity)
        self.emit("participant_joined", live, new, identity)
        self.stack.livekit.remove_participant(ROOM, old)
        self.emit("participant_left", live, old, identity)
        TALLY["refreshes"] += 1

    @precondition(lambda self: self.live() is not None)
    @rule()
    def finish_session(self) -> None:
        """LiveKit closes the room: everyone is disconnected, then room_finished."""
        live = self.live()
        assert live is not None
        for sid, identity in self.present():
            self.stack.livekit.remove_participant(ROOM, sid)
            self.emit("participant_left", live, sid, identity)
        self.stack.livekit.close_room(ROOM)
        self.emit("room_finished", live)

    # --- delivery -------------------------------------------------------------------------

    def session_of(self, sid: str | None) -> int:
        return next((i for i, live in enumerate(self.sessions) if live.sid == sid), -1)

    def deliver_now(self, delivered: LiveKitEvent) -> None:
        """Deliver one webhook; one of an older session than the record's must change nothing."""
        record = self.stack.store.get(ROOM)
        assert delivered.room is not None
        stale = record is not None and self.session_of(delivered.room.sid) < self.session_of(record.sid)
        before = self.meter.snapshot([ROOM]) if stale else {}
        self.stack.controller.handle_event(delivered)
        self.delivered.append(delivered)
        if stale:
            assert self.stack.store.get(ROOM) == record, (
                f"{delivered.event} of session {self.session_of(delivered.room.sid)} changed the room "
                f"of session {self.session_of(record.sid if record else None)}"
            )
            self.check(
                repeated_effects(f"a late {delivered.event} of an older session", before, self.after())
            )
            TALLY["late events of an older session"] += 1

    def after(self) -> dict[str, int]:
        return self.meter.snapshot([ROOM])

    def check(self, duplicates: list[str]) -> None:
        """Count what the duplicate checks found (the report's figure), then fail on it."""
        TALLY["duplicates"] += len(duplicates)
        holds(duplicates)

    @precondition(lambda self: self.outbox)
    @rule(which=pick)
    def deliver(self, which: int) -> None:
        """LiveKit delivers a waiting webhook: the oldest (0) or a later one, overtaking it."""
        index = which % len(self.outbox)
        TALLY["reordered"] += index > 0
        self.deliver_now(self.outbox.pop(index))

    @precondition(lambda self: self.outbox)
    @rule(which=pick)
    def deliver_during_livekit_outage(self, which: int) -> None:
        """The webhook arrives while LiveKit's API is down: a 503 makes LiveKit retry it later."""
        waiting = self.outbox.pop(which % len(self.outbox))
        self.stack.livekit.set_down(True)
        TALLY["faults"] += 1
        try:
            self.deliver_now(waiting)
        except LiveKitUnavailable:
            self.outbox.append(waiting)
            TALLY["replayed"] += 1
        finally:
            self.stack.livekit.set_down(False)

    @precondition(lambda self: self.outbox)
    @rule(which=pick)
    def lose(self, which: int) -> None:
        """A webhook never arrives (LiveKit gave up after 30 s, or a 4xx it never retries)."""
        self.outbox.pop(which % len(self.outbox))
        self.lost = True
        TALLY["events lost"] += 1

    @precondition(lambda self: self.delivered)
    @rule(which=pick)
    def replay(self, which: int) -> None:
        """LiveKit delivers a processed webhook again, with its id: it must do nothing."""
        again = self.delivered[which % len(self.delivered)]
        before = self.meter.snapshot([ROOM])
        outcome = self.stack.controller.handle_event(again)
        assert outcome == "duplicate", f"{again.event} delivered again answered {outcome}"
        self.check(repeated_effects(f"a redelivered {again.event}", before, self.after()))
        TALLY["replayed"] += 1

    # --- time, timers, workers, ECS ---------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Time passes; timers fire when due and live workers heartbeat as they do every few seconds."""
        target = self.stack.clock.now() + seconds
        while (step := min(HEARTBEAT_EVERY_SECONDS, target - self.stack.clock.now())) > 0:
            for arn in sorted(self.stack.heartbeating):
                record = self.stack.store.get_worker(arn)
                if (
                    self.stack.runner.tasks[arn].running
                    and record
                    and record.status is not WorkerStatus.STOPPED
                ):
                    self.stack.heartbeat(arn)
            self.stack.advance(step)

    @rule(seconds=st.integers(min_value=1, max_value=90))
    def wait(self, seconds: int) -> None:
        self.advance(seconds)

    @precondition(lambda self: self.stack.timers.sent)
    @rule(which=pick)
    def lose_timer(self, which: int) -> None:
        self.stack.timers.sent.pop(which % len(self.stack.timers.sent))
        self.lost = True
        self.timer_lost_at = self.stack.clock.now()
        TALLY["timers lost"] += 1

    @precondition(lambda self: self.stack.timers.sent)
    @rule(which=pick)
    def timer_delivered_twice(self, which: int) -> None:
        """SQS is at-least-once: the same message right after its first delivery does nothing."""
        scheduled = sorted(self.stack.timers.sent, key=lambda s: s.due_at)[
            which % len(self.stack.timers.sent)
        ]
        self.advance(max(0.0, scheduled.due_at - self.stack.clock.now()))
        before = self.meter.snapshot([ROOM])
        self.stack.controller.handle_timer(scheduled.message)
        self.check(repeated_effects(f"a redelivered {scheduled.message.kind} timer", before, self.after()))
        TALLY["replayed"] += 1

    @precondition(lambda self: any(isinstance(s.message, GraceExpired) for s in self.stack.timers.sent))
    @rule(early=st.integers(min_value=1, max_value=5))
    def grace_timer_early(self, early: int) -> None:
        """The grace timer is handed over a few seconds before its deadline."""
        scheduled = next(s for s in self.stack.timers.sent if isinstance(s.message, GraceExpired))
        self.stack.timers.sent.remove(scheduled)
        self.advance(max(0.0, scheduled.due_at - early - self.stack.clock.now()))
        self.stack.controller.handle_timer(scheduled.message)
        TALLY["early timers"] += 1

    def unready_task(self) -> str | None:
        for task in self.stack.runner.running():
            record = self.stack.store.get_worker(task.arn)
            if record is None or record.status is not WorkerStatus.READY:
                return task.arn
        return None

    @precondition(lambda self: self.unready_task() is not None)
    @rule()
    def worker_ready(self) -> None:
        self.stack.worker_becomes_ready(ROOM)

    def running_agent(self) -> str | None:
        record = self.stack.store.get(ROOM)
        arn = record.agent.task_arn if record is not None and record.agent is not None else None
        return arn if arn is not None and self.stack.runner.tasks[arn].running else None

    @precondition(lambda self: self.running_agent() is not None)
    @rule(exit_code=st.sampled_from([1, 137, None]))
    def crash(self, exit_code: int | None) -> None:
        arn = self.running_agent()
        assert arn is not None
        self.stack.runner.crash(arn, "EssentialContainerExited", exit_code)
        self.stack.ecs_event(
            arn, "STOPPED", version=STOPPED_VERSION, stop_code="EssentialContainerExited", exit_code=exit_code
        )
        self.stopped_tasks.append(arn)
        TALLY["crashes"] += 1

    @precondition(lambda self: self.stopped_tasks)
    @rule(which=pick, status=st.sampled_from(["STOPPED", "RUNNING"]))
    def task_event_again(self, which: int, status: str) -> None:
        """EventBridge redelivers the STOPPED event, or an older RUNNING one arrives late."""
        arn = self.stopped_tasks[which % len(self.stopped_tasks)]
        version = STOPPED_VERSION if status == "STOPPED" else STOPPED_VERSION - 1
        before = self.meter.snapshot([ROOM])
        self.stack.ecs_event(arn, status, version=version, exit_code=1)
        self.check(repeated_effects(f"a late {status} task event", before, self.after()))
        TALLY["replayed"] += 1

    @rule(seconds=st.integers(min_value=11, max_value=60))
    def sweep(self, seconds: int) -> None:
        self.advance(seconds)
        self.sweep_now()

    def sweep_now(self) -> None:
        self.stack.sweep()
        self.swept_at = self.stack.clock.now()
        TALLY["sweeps"] += 1

    def waiting_for_a_sweep(self, since: float) -> bool:
        """A timer was lost and no sweep has run since ``since``: the backstop has not come yet."""
        return self.timer_lost_at is not None and (self.swept_at is None or self.swept_at < since)

    @rule()
    def settle(self) -> None:
        """LiveKit's retries all arrive; grace + 5 s later an agent is there exactly while humans
        are (one sweep later when something was lost)."""
        while self.outbox:
            self.deliver_now(self.outbox.pop(0))
        self.advance(self.grace + GRACE_SLACK_SECONDS)
        if self.lost:
            self.sweep_now()
            self.advance(self.grace + GRACE_SLACK_SECONDS)
            self.lost = False
        views = twin_views(self.stack, [ROOM])
        holds(no_agent_without_humans(views))
        while self.unready_task() is not None:
            self.stack.worker_becomes_ready(ROOM)
        views = twin_views(self.stack, [ROOM])
        holds(agent_for_every_room_with_humans(views, self.stack.clock.now(), dispatched=True))
        TALLY["settled"] += 1

    # --- after every step -------------------------------------------------------------------

    @invariant()
    def at_most_one_agent(self) -> None:
        self.follow_livekit()
        TALLY["steps"] += 1
        self.check(at_most_one_agent(twin_views(self.stack, [ROOM])))

    @invariant()
    def grace_ends_on_time(self) -> None:
        """No agent for a room without humans beyond grace + 5 s (or until a sweep, once a timer
        was lost): a recorded grace period must be over by then."""
        record = self.stack.store.get(ROOM)
        now = self.stack.clock.now()
        if record is None or record.grace is None or record.humans:
            return
        overdue = now - record.grace.deadline
        if overdue > GRACE_SLACK_SECONDS and not self.waiting_for_a_sweep(record.grace.deadline):
            raise AssertionError(f"the grace period ended {overdue:.0f} s ago and the agent is still there")

    @invariant()
    def humans_get_a_launch(self) -> None:
        """Recorded humans have an agent launched at once, unless the control plane announced a
        backoff or a crash loop (or a lost respawn timer waits for the sweep)."""
        record = self.stack.store.get(ROOM)
        now = self.stack.clock.now()
        if record is None or not record.wants_agent or record.agent is not None or record.failed_at:
            return
        due = record.next_launch_at
        if due is not None and (due > now or self.waiting_for_a_sweep(due)):
            return
        raise AssertionError(f"humans {sorted(record.humans)} are recorded but no agent is launched")

    @invariant()
    def never_back_to_an_older_session(self) -> None:
        self.follow_livekit()
        record = self.stack.store.get(ROOM)
        if record is None:
            return
        session = self.session_of(record.sid)
        assert session >= self.newest_session, (
            f"the room went back from session {self.newest_session} to session {session}"
        )
        self.newest_session = session


def test_any_sequence_of_sessions_keeps_one_agent_exactly_while_humans_are_there(figures: Figures) -> None:
    TALLY.clear()
    examples, steps = 200, 40
    try:
        run_state_machine_as_test(
            RoomSessions,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        figures.record(
            "state machine: sessions of one room name",
            "≤1 agent per step; agent iff humans after settle",
            replayed=TALLY["replayed"],
            faults=TALLY["faults"] + TALLY["events lost"] + TALLY["timers lost"] + TALLY["crashes"],
            duplicates=TALLY["duplicates"],
            examples=TALLY["examples"],
            steps=TALLY["steps"],
            sessions=TALLY["sessions"] + TALLY["sessions opened by a dispatch"],
            events=TALLY["events emitted"],
            late_old_session=TALLY["late events of an older session"],
            lost=TALLY["events lost"] + TALLY["timers lost"],
            crashes=TALLY["crashes"],
            sweeps=TALLY["sweeps"],
            settled=TALLY["settled"],
        )
