"""Faults on every port, each with its expected outcome: a safe retry, a metric, a log line, and
never a duplicate effect.

On the twins, one room lives its whole life (join, worker ready, a sweep, leave, grace expiry)
with the retries AWS and LiveKit really make: LiveKit redelivers a webhook answered 5xx, SQS
redelivers a failed timer message after the queue's visibility timeout, the sweep runs every
minute. One fault is injected at the port's edge in one phase; the phase must still reach its
outcome, by the mechanism named for the case. Then the real adapters meet real AWS errors
(moto behind botocore hooks) through the Lambda handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from control_plane.adapters.memory.runtime import ScheduledMessage
from control_plane.humans import is_human
from control_plane.ports import LaunchFailed, LaunchOutcomeUnknown, LiveKitUnavailable, RunnerUnavailable
from control_plane.room import Room
from control_plane.worker_protocol import GraceExpired, Respawn, TimerMessage
from tests.harness import TwinStack, event
from tests.reliability.faults import Fault, TwinFaults, throttled
from tests.reliability.invariants import (
    GRACE_SLACK_SECONDS,
    EffectMeter,
    agent_for_every_room_with_humans,
    at_most_one_agent,
    holds,
    no_agent_without_humans,
    twin_views,
)
from tests.reliability.report import Figures

ROOM = "room-1"
WEBHOOK_RETRY_SECONDS = 5
WEBHOOK_ATTEMPTS = 6  # LiveKit retries for about 30 s, then drops the event
SQS_VISIBILITY_SECONDS = 180  # template.yaml: a failed timer message is visible again after this
SWEEP_EVERY_SECONDS = 60
LAUNCH_WAIT_SECONDS = 30  # covers the first launch backoff and the unknown-outcome retry (10 s)

LIVEKIT_RETRY, SQS_REDELIVERY, RESPAWN, SWEEP = "LiveKit retry", "SQS redelivery", "respawn timer", "sweep"


class Lifecycle:
    """One room's life on the twins, driven with AWS's and LiveKit's own retries."""

    def __init__(self, stack: TwinStack) -> None:
        self.stack = stack
        self.used: list[str] = []
        self.redelivered: set[int] = set()
        self.retries = 0
        stack.run_due_timers = self._run_due_timers  # type: ignore[method-assign]

    # --- triggers with their retries -----------------------------------------------------

    def webhook(self, kind: str, sid: str, identity: str = "alice") -> None:
        live = self.stack.livekit.get_room(ROOM)
        assert live is not None
        delivered = event(
            kind,
            room=ROOM,
            room_sid=live.sid,
            room_created_at=live.created_at,
            sid=sid,
            identity=identity,
            at=self.stack.clock.now(),
        )
        for attempt in range(WEBHOOK_ATTEMPTS):
            try:
                self.stack.controller.handle_event(delivered)
                return
            except Exception:  # the webhook Lambda answers 5xx (503 or an error): LiveKit retries
                if attempt + 1 == WEBHOOK_ATTEMPTS:
                    return  # LiveKit drops it
                self.used.append(LIVEKIT_RETRY)
                self.retries += 1
                self.stack.advance(WEBHOOK_RETRY_SECONDS)

    def _run_due_timers(self) -> int:
        due = self.stack.timers.take_due()
        for message in due:
            try:
                self.stack.controller.handle_timer(message)
            except Exception:  # a failed record: SQS makes it visible again after the timeout
                self._requeue(message)
                continue
            if id(message) in self.redelivered:
                self.used.append(SQS_REDELIVERY)
            if isinstance(message, Respawn):
                self.used.append(RESPAWN)
        return len(due)

    def _requeue(self, message: TimerMessage) -> None:
        self.redelivered.add(id(message))
        self.retries += 1
        self.stack.timers.sent.append(
            ScheduledMessage(message, self.stack.clock.now() + SQS_VISIBILITY_SECONDS)
        )

    # --- phases ------------------------------------------------------------------------------

    def phase(
        self, name: str, action: Callable[[], object], expect: Callable[[], list[str]]
    ) -> tuple[str, ...]:
        """Run ``action``; if ``expect`` finds the room not there yet, the next sweep must get it there."""
        self.used = []
        action()
        problems = expect()
        if problems:
            self.stack.advance(SWEEP_EVERY_SECONDS)
            self.stack.sweep()
            self.used.append(SWEEP)
            problems = expect()
        holds([f"after {name}: {problem}" for problem in problems])
        return tuple(dict.fromkeys(self.used))

    def views(self) -> Any:
        return twin_views(self.stack, [ROOM])

    def record(self) -> Room:
        return self.stack.room(ROOM)


def join(life: Lifecycle) -> None:
    life.stack.livekit.open_room(ROOM, departure_timeout=70)
    life.stack.livekit.add_participant(ROOM, "PA_1", "alice")
    life.webhook("participant_joined", "PA_1")
    life.stack.advance(LAUNCH_WAIT_SECONDS)


def leave_all(life: Lifecycle) -> None:
    for person in life.stack.livekit.list_participants(ROOM):
        if is_human(person.kind):
            life.stack.livekit.remove_participant(ROOM, person.sid)
            life.webhook("participant_left", person.sid, person.identity)


def has_agent(life: Lifecycle) -> list[str]:
    views = life.views()
    return at_most_one_agent(views) + agent_for_every_room_with_humans(views, life.stack.clock.now())


def has_dispatch(life: Lifecycle) -> list[str]:
    """The agent is dispatched, and the record knows which dispatch it is (the room is active)."""
    views = life.views()
    agent = life.record().agent
    recorded = agent.dispatch_id if agent is not None else None
    known = (
        []
        if recorded in [d.dispatch_id for d in life.stack.dispatches(ROOM)]
        else [f"the record's dispatch {recorded!r} is not the room's dispatch"]
    )
    return (
        at_most_one_agent(views)
        + known
        + agent_for_every_room_with_humans(views, life.stack.clock.now(), dispatched=True)
    )


def in_grace_with_its_timer(life: Lifecycle) -> list[str]:
    grace = life.record().grace
    if grace is None:
        return [f"the room is {life.record().state.value}, not in grace"]
    timers = [s.message for s in life.stack.timers.sent if isinstance(s.message, GraceExpired)]
    current = [m for m in timers if m.generation == grace.generation]
    return [] if len(current) == 1 else [f"{len(current)} timers for the grace period, not 1"]


def gone(life: Lifecycle) -> list[str]:
    views = life.views()
    state = life.record().state.value
    return (
        at_most_one_agent(views)
        + no_agent_without_humans(views)
        + ([] if state == "closed" else [f"the room is {state}, not closed"])
    )


# --- the cases ----------------------------------------------------------------------------------


def claims_launch(room: Room, *_: Any, **__: Any) -> bool:
    return room.agent is not None and room.agent.task_arn is None and room.stop_requested_at is None


def records_task(room: Room, *_: Any, **__: Any) -> bool:
    agent = room.agent
    return agent is not None and agent.task_arn is not None and agent.dispatch_id is None and not room.grace


def is_message(kind: type) -> Callable[..., bool]:
    return lambda message, *_, **__: isinstance(message, kind)


def another_human_joins(stack: TwinStack) -> None:
    """A concurrent Lambda records bob's join between our read and our conditional write."""
    live = stack.livekit.get_room(ROOM)
    assert live is not None
    stack.livekit.add_participant(ROOM, "PA_9", "bob")
    stack.controller.handle_event(
        event(
            "participant_joined",
            room=ROOM,
            room_sid=live.sid,
            room_created_at=live.created_at,
            sid="PA_9",
            identity="bob",
            at=stack.clock.now(),
        )
    )


def unknown(message: str) -> Callable[[], Exception]:
    return lambda: LaunchOutcomeUnknown(message)


@dataclass(frozen=True)
class Case:
    port: str
    name: str
    phase: str
    faults: tuple[Fault, ...]
    healed_by: tuple[str, ...]
    metric: tuple[str, dict[str, str]] | None = None
    log: str | None = None

    @property
    def outcome(self) -> str:
        if self.phase == "sweep":
            return "listing skipped: nothing stopped or deleted"
        return f"healed by {' + '.join(self.healed_by)}" if self.healed_by else "healed at once"


CASES = [
    Case(
        "DynamoDB",
        "throttled: webhook dedupe claim",
        "join",
        (Fault("store", "claim_event", lambda: throttled("PutItem")),),
        (LIVEKIT_RETRY,),
    ),
    Case(
        "DynamoDB",
        "throttled: recording the join",
        "join",
        (Fault("store", "observe_participant", lambda: throttled("UpdateItem")),),
        (LIVEKIT_RETRY,),
    ),
    Case(
        "DynamoDB",
        "throttled: the launch claim",
        "join",
        (Fault("store", "save", lambda: throttled("PutItem"), when=claims_launch),),
        (LIVEKIT_RETRY,),
    ),
    Case(
        "DynamoDB",
        "throttled: recording the started task (found again by its token)",
        "join",
        (Fault("store", "save", lambda: throttled("PutItem"), when=records_task),),
        (LIVEKIT_RETRY,),
    ),
    Case(
        "DynamoDB",
        "conditional conflict: a concurrent join lands before the launch claim",
        "join",
        (Fault("store", "save", when=claims_launch, interleave=another_human_joins),),
        (),
    ),
    Case(
        "DynamoDB",
        "throttled: reading the worker on worker_ready",
        "ready",
        (Fault("store", "get_worker", lambda: throttled("GetItem")),),
        (SWEEP,),
    ),
    Case(
        "ECS",
        "no capacity: RunTask failures[]",
        "join",
        (Fault("runner", "launch", lambda: LaunchFailed("RESOURCE:FARGATE (injected)")),),
        (RESPAWN,),
        ("TaskLaunchFailures", {}),
        "task launch failed",
    ),
    Case(
        "ECS",
        "throttled: RunTask outcome unknown, nothing started",
        "join",
        (Fault("runner", "launch", unknown("ThrottlingException after retries (injected)")),),
        (RESPAWN,),
        ("TaskLaunchOutcomeUnknown", {}),
        "task launch outcome unknown",
    ),
    Case(
        "ECS",
        "RunTask reply lost after the task started",
        "join",
        (Fault("runner", "launch", unknown("ReadTimeoutError (injected)"), after=True),),
        (RESPAWN,),
        ("TaskLaunchOutcomeUnknown", {}),
        "task launch outcome unknown",
    ),
    Case(
        "ECS",
        "throttled: StopTask at grace expiry",
        "expiry",
        (Fault("runner", "stop", lambda: throttled("StopTask")),),
        (SWEEP,),
    ),
    Case(
        "ECS",
        "throttled: the sweep's task listing",
        "sweep",
        (Fault("runner", "list_tasks", lambda: RunnerUnavailable("ThrottlingException (injected)")),),
        (),
        ("SweepListingFailures", {"Source": "ecs"}),
        "sweep listing failed",
    ),
    Case(
        "LiveKit",
        "5xx: CreateDispatch",
        "ready",
        (Fault("livekit", "create_dispatch", lambda: LiveKitUnavailable("503 (injected)")),),
        (SWEEP,),
    ),
    Case(
        "LiveKit",
        "timeout after CreateDispatch took effect",
        "ready",
        (Fault("livekit", "create_dispatch", lambda: LiveKitUnavailable("timeout (injected)"), after=True),),
        (SWEEP,),
    ),
    Case(
        "LiveKit",
        "5xx: ListDispatch while removing the agent",
        "expiry",
        (Fault("livekit", "list_dispatches", lambda: LiveKitUnavailable("503 (injected)")),),
        (SWEEP,),
    ),
    Case(
        "LiveKit",
        "timeout after DeleteDispatch took effect",
        "expiry",
        (Fault("livekit", "delete_dispatch", lambda: LiveKitUnavailable("timeout (injected)"), after=True),),
        (SWEEP,),
    ),
    Case(
        "LiveKit",
        "5xx on a webhook's removal (room_finished)",
        "finish",
        (Fault("livekit", "list_dispatches", lambda: LiveKitUnavailable("503 (injected)")),),
        (LIVEKIT_RETRY,),
    ),
    Case(
        "LiveKit",
        "down while the sweep lists rooms",
        "sweep",
        (Fault("livekit", "list_rooms", lambda: LiveKitUnavailable("503 (injected)")),),
        (),
        ("SweepListingFailures", {"Source": "livekit"}),
        "sweep listing failed",
    ),
    Case(
        "SQS",
        "send failed: the grace timer",
        "leave",
        (Fault("timers", "send", lambda: throttled("SendMessage"), when=is_message(GraceExpired)),),
        (LIVEKIT_RETRY,),
    ),
    Case(
        "SQS",
        "send failed: the respawn timer after a capacity error",
        "join",
        (
            Fault("runner", "launch", lambda: LaunchFailed("RESOURCE:FARGATE (injected)")),
            Fault("timers", "send", lambda: throttled("SendMessage"), when=is_message(Respawn)),
        ),
        (LIVEKIT_RETRY, SWEEP),
        ("TaskLaunchFailures", {}),
        "task launch failed",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.port}: {c.name}" for c in CASES])
def test_a_fault_on_a_port_is_healed_without_a_duplicate_effect(
    case: Case, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack = TwinStack()
    meter = EffectMeter(stack)
    faults = TwinFaults(stack)
    life = Lifecycle(stack)
    scenario = f"{case.port} fault: {case.name}"
    figures.record(scenario, case.outcome, faults=0, duplicates=0)
    healed: dict[str, tuple[str, ...]] = {}

    def run(phase: str, action: Callable[[], object], expect: Callable[[], list[str]]) -> None:
        if phase == case.phase:
            for fault in case.faults:
                faults.arm(fault)
        healed[phase] = life.phase(phase, action, expect)

    run("join", lambda: join(life), lambda: has_agent(life))
    run("ready", lambda: stack.worker_becomes_ready(ROOM), lambda: has_dispatch(life))
    steady = (life.record().agent, [d.dispatch_id for d in stack.dispatches(ROOM)])

    def same_agent() -> list[str]:
        now = (life.record().agent, [d.dispatch_id for d in stack.dispatches(ROOM)])
        return has_dispatch(life) + ([] if now == steady else [f"the agent changed: {steady} → {now}"])

    run("sweep", lambda: (stack.advance(SWEEP_EVERY_SECONDS), stack.sweep()), same_agent)
    if case.phase == "finish":
        run("finish", lambda: finish(life), lambda: gone(life))
    else:
        run("leave", lambda: leave_all(life), lambda: in_grace_with_its_timer(life))
        run(
            "expiry",
            lambda: stack.advance(stack.policy.grace_seconds + GRACE_SLACK_SECONDS),
            lambda: gone(life),
        )

    effects = meter.snapshot([])
    duplicates = sum(
        max(0, effects.get(key, 0) - 1)
        for key in ("task started", "dispatch created", "dispatch deleted", "task stopped by us")
    )
    figures.record(
        scenario,
        case.outcome,
        faults=faults.total,
        replayed=life.retries,
        duplicates=duplicates,
    )
    assert faults.total == sum(f.times for f in case.faults), f"injected {dict(faults.injected)}"
    assert healed[case.phase] == case.healed_by, f"the {case.phase} phase was healed by {healed[case.phase]}"
    assert effects["task started"] == effects.get("dispatch created") == 1, effects
    assert effects.get("dispatch deleted", 0) <= 1 and effects["task stopped by us"] == 1, effects
    if case.metric is not None:
        name, dimensions = case.metric
        counted = stack.metrics.count_for(name, **dimensions) if dimensions else stack.metrics.counts[name]
        assert counted >= 1, f"metric {name}{dimensions} not counted"
    if case.log is not None:
        assert any(case.log in record.getMessage() for record in caplog.records), f"no log {case.log!r}"


def finish(life: Lifecycle) -> None:
    """LiveKit closes the room while the human is in it: their leave, then room_finished."""
    live = life.stack.livekit.get_room(ROOM)
    assert live is not None
    life.stack.livekit.remove_participant(ROOM, "PA_1")
    life.webhook("participant_left", "PA_1")
    life.stack.livekit.close_room(ROOM)
    delivered = event("room_finished", room=ROOM, room_sid=live.sid, room_created_at=live.created_at)
    for attempt in range(WEBHOOK_ATTEMPTS):
        try:
            life.stack.controller.handle_event(delivered)
            return
        except LiveKitUnavailable:
            assert attempt + 1 < WEBHOOK_ATTEMPTS
            life.used.append(LIVEKIT_RETRY)
            life.retries += 1
            life.stack.advance(WEBHOOK_RETRY_SECONDS)
