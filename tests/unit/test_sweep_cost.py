"""What a sweep costs in LiveKit calls: a healthy room none, a room that disagrees with LiveKit's
room list a few, the audit a bounded share; and every call of the sweep within its budget."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from control_plane.adapters.memory.async_livekit import AsyncLiveKitFacade
from control_plane.ports import LiveKitRateLimited, LiveRoom
from control_plane.room import Agent, Human, Room
from control_plane.sweeper.bridge import BudgetedLiveKit, CallBudget
from control_plane.sweeper.plan import (
    RoomCheck,
    audit_due,
    plan_room_check,
)
from control_plane.sweeper.run import Sweeper
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from tests.harness import AGENT, EGRESS, SWEEP_POLICY, TwinStack

NOW = 1_800_000_000.0
NO_AUDIT = replace(SWEEP_POLICY, audit_period_seconds=10**9)


def active_room(stack: TwinStack, room: str = "room-1", sid: str = "PA_1") -> str:
    """A room with one human and its agent's job running, reported started by its worker."""
    stack.join(sid, room=room)
    task = stack.worker_becomes_ready(room)
    stack.job_started(room, task, f"AJ_{room}")
    return task


def livekit_calls(stack: TwinStack) -> int:
    return sum(stack.livekit.calls.values())


# --- the pure check, as a table ---------------------------------------------------------------

HUMAN = {"PA_1": Human(identity="alice", joined_at=NOW - 600)}
DISPATCHED = Agent(
    launch_token="t",
    launch_claimed_at=NOW - 600,
    room_sid="RM_1",
    task_arn="arn:task/1",
    dispatch_id="AD_1",
    dispatched_at=NOW - 300,
    job_id="AJ_1",
)
FRESH_DISPATCH = DISPATCHED.model_copy(update={"dispatched_at": NOW - 5, "job_id": None})
UNREPORTED = DISPATCHED.model_copy(update={"job_id": None})
"""Dispatched past the settle time, no job reported started: LiveKit dropped it, or the report is lost."""
READY = WorkerRecord(
    task_arn="arn:task/1", status=WorkerStatus.READY, capacity=1, heartbeat_at=NOW - 5, jobs={"r": "AJ_1"}
)
SILENT = READY.model_copy(update={"heartbeat_at": NOW - 600})


def live(participants: int, sid: str = "RM_1") -> LiveRoom:
    return LiveRoom(
        sid=sid, name="r", num_participants=participants, departure_timeout=70, created_at=NOW - 900
    )


def room(humans: dict[str, Human], agent: Agent | None) -> Room:
    return Room(name="r", sid="RM_1", humans=humans, agent=agent, updated_at=NOW - 120)


def failed_since(agent: Agent, after_dispatch: float) -> Room:
    """A room whose last job failure was recorded ``after_dispatch`` seconds after its dispatch."""
    assert agent.dispatched_at is not None
    return room(HUMAN, agent).model_copy(update={"crashes": (agent.dispatched_at + after_dispatch,)})


# LiveKit's num_participants counts humans only: agents and egress never (livekit-server v1.13.5
# rtc/room.go updateProto), so the listing of a healthy room with its agent shows its humans.
@pytest.mark.parametrize(
    ("record", "listing", "worker", "audit", "expected"),
    [
        (room(HUMAN, DISPATCHED), live(1), READY, False, RoomCheck.CONSISTENT),
        (room(HUMAN, DISPATCHED), live(1), READY, True, RoomCheck.INSPECT),
        (room(HUMAN, DISPATCHED), live(0), READY, False, RoomCheck.INSPECT),  # a missed leave
        (room(HUMAN, DISPATCHED), live(2), READY, False, RoomCheck.INSPECT),  # a missed join
        (room(HUMAN, DISPATCHED), live(1), SILENT, False, RoomCheck.INSPECT),  # dispatch suspect
        (room(HUMAN, DISPATCHED), live(1), None, False, RoomCheck.INSPECT),
        (room(HUMAN, FRESH_DISPATCH), live(1), READY, False, RoomCheck.CONSISTENT),  # agent joining
        (room(HUMAN, UNREPORTED), live(1), READY, False, RoomCheck.INSPECT),  # a job LiveKit dropped?
        (room({}, UNREPORTED), live(0), READY, False, RoomCheck.INSPECT),
        (room({}, DISPATCHED), live(0), READY, False, RoomCheck.CONSISTENT),  # grace: agent only
        (room(HUMAN, None), live(1), None, False, RoomCheck.CONSISTENT),  # waiting out a backoff
        (failed_since(DISPATCHED, 1), live(1), READY, False, RoomCheck.INSPECT),  # a dead dispatch
        (failed_since(DISPATCHED, -1), live(1), READY, False, RoomCheck.CONSISTENT),  # dispatched since
        (room(HUMAN, None), live(2), None, False, RoomCheck.INSPECT),  # someone we missed
        (room(HUMAN, DISPATCHED), None, READY, False, RoomCheck.GONE),
        (room(HUMAN, DISPATCHED), live(1, sid="RM_2"), READY, False, RoomCheck.NEW_SESSION),
    ],
)
def test_which_tracked_rooms_cost_per_room_calls(
    record: Room, listing: LiveRoom | None, worker: WorkerRecord | None, audit: bool, expected: RoomCheck
) -> None:
    assert plan_room_check(record, listing, worker, NOW, SWEEP_POLICY, audit) is expected


def test_the_audit_visits_every_room_once_per_period_in_equal_shares() -> None:
    policy = replace(SWEEP_POLICY, audit_period_seconds=900, sweep_interval_seconds=60)
    names = [f"room-{n}" for n in range(3000)]
    visits: dict[str, int] = dict.fromkeys(names, 0)
    shares = []
    for sweep in range(15):
        due = [name for name in names if audit_due(name, NOW + sweep * 60, policy)]
        shares.append(len(due))
        for name in due:
            visits[name] += 1
    assert set(visits.values()) == {1}, "each room exactly once per period"
    assert max(shares) < 2 * len(names) / 15, "no sweep carries much more than its share"


# --- on the twins: calls per scenario ----------------------------------------------------------


def test_a_healthy_room_costs_no_per_room_call() -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(20):
        active_room(stack, room=f"room-{n}", sid=f"PA_{n}")
    stack.advance(60)
    before = livekit_calls(stack)

    report = stack.sweep()

    assert livekit_calls(stack) - before == 1, "only the room list"
    assert (report.livekit_calls, report.rooms_inspected) == (1, 0)


def test_a_room_whose_count_disagrees_with_the_room_list_is_inspected_for_a_few_calls() -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(10):
        active_room(stack, room=f"room-{n}", sid=f"PA_{n}")
    stack.livekit.remove_participant("room-3", "PA_3")  # a missed leave
    stack.advance(60)
    before = livekit_calls(stack)

    report = stack.sweep()

    assert report.rooms_inspected == 1
    # the list, ListDispatch and ListParticipants, the removal's ListDispatch
    assert livekit_calls(stack) - before <= 1 + 2 + 3
    assert stack.room("room-3").humans == {}


@pytest.mark.parametrize(
    ("break_it", "most_calls"),
    [
        ("dead_dispatch", 3),  # DeleteDispatch, CreateDispatch, its ListDispatch
        ("duplicate_dispatch", 1),  # DeleteDispatch
    ],
)
def test_a_dispatch_gone_wrong_behind_a_healthy_count_is_repaired_at_its_audit(
    break_it: str, most_calls: int
) -> None:
    """Agents are not in LiveKit's count, so only the audit's ListDispatch shows a dead or extra
    dispatch (a dead job's worker also reports it, which this leaves out)."""
    every_sweep = replace(SWEEP_POLICY, audit_period_seconds=SWEEP_POLICY.sweep_interval_seconds)
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(10):
        active_room(stack, room=f"room-{n}", sid=f"PA_{n}")
    dispatch_id = stack.room("room-3").agent.dispatch_id
    if break_it == "dead_dispatch":
        stack.livekit.end_jobs("room-3", dispatch_id, "JS_FAILED")
    else:
        stack.livekit.create_dispatch("room-3", "voice-agent", "{}")
    stack.advance(60)
    assert stack.sweep().rooms_inspected == 0, "the count is the humans: nothing to see"
    stack.sweeper = Sweeper(stack.ports, AsyncLiveKitFacade(stack.livekit), stack.controller_for, every_sweep)
    stack.advance(60)
    before = livekit_calls(stack)

    report = stack.sweep()

    assert report.rooms_inspected == 10
    assert livekit_calls(stack) - before <= 1 + 10 + most_calls, "the list, the audit, the repair"
    if break_it == "dead_dispatch":  # a job dead without a report counts as a failure: backoff first
        assert stack.dispatches("room-3") == [] and len(stack.room("room-3").crashes) == 1
        stack.advance(10)
    assert [d.has_running_job for d in stack.dispatches("room-3")] == [True]


@pytest.mark.parametrize("kind", [EGRESS, AGENT], ids=["egress", "another-apps-agent"])
def test_a_healthy_room_with_an_egress_or_another_agent_costs_no_per_room_call(kind: int) -> None:
    """LiveKit's count leaves agents and egress out (``IsDependent``), so neither makes a room
    disagree with the room list, sweep after sweep (issue 18 point 8)."""
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(5):
        active_room(stack, room=f"room-{n}", sid=f"PA_{n}")
    stack.livekit.add_participant("room-3", "PA_rec", "recorder", kind=kind)
    stack.advance(60)

    for _ in range(3):
        before = livekit_calls(stack)
        report = stack.sweep()
        assert (livekit_calls(stack) - before, report.rooms_inspected) == (1, 0), "only the room list"
        stack.advance(60)
    assert [d.has_running_job for d in stack.dispatches("room-3")] == [True], "our agent untouched"


def test_an_untracked_empty_room_costs_nothing_until_its_audit_turn() -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    stack.livekit.open_room("nobody-here")
    before = livekit_calls(stack)
    stack.sweep()
    assert livekit_calls(stack) - before == 1


# --- the call budget ----------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_budget_lets_a_burst_through_then_paces_calls_at_the_rate() -> None:
    time = FakeTime()
    budget = CallBudget(10, clock=time.clock, sleep=time.sleep)

    async def take(calls: int) -> None:
        for _ in range(calls):
            await budget.take()

    asyncio.run(take(30))

    assert time.now == pytest.approx(2.0), "10 at once, then 20 more at 10 a second"
    assert budget.waited_seconds == pytest.approx(2.0)


class ThrottledLiveKit:
    """LiveKit answering 429 a given number of times, then the room list."""

    def __init__(self, throttled: int) -> None:
        self.throttled = throttled
        self.calls = 0

    async def alist_rooms(self, names: Sequence[str] = ()) -> list[LiveRoom]:
        self.calls += 1
        if self.throttled:
            self.throttled -= 1
            raise LiveKitRateLimited("resource_exhausted (HTTP 429)")
        return []


def test_a_rate_limited_call_backs_off_and_retries_then_gives_up() -> None:
    time = FakeTime()
    recovers = BudgetedLiveKit(ThrottledLiveKit(2), CallBudget(0), sleep=time.sleep)  # type: ignore[arg-type]
    assert asyncio.run(recovers.alist_rooms()) == []
    assert (recovers.calls, recovers.rate_limited, time.slept) == (3, 2, [0.5, 1.0])

    stuck = BudgetedLiveKit(ThrottledLiveKit(99), CallBudget(0), sleep=time.sleep)  # type: ignore[arg-type]
    with pytest.raises(LiveKitRateLimited):
        asyncio.run(stuck.alist_rooms())
    assert stuck.calls == 4


def test_rooms_waiting_for_their_workers_cost_the_sweep_no_worker_listing_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each worker listing is a paginated index query (and a scan of every worker in it): the
    sweep judges rooms waiting on a starting task on its own listing, not one listing a room."""
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(20):
        stack.join(f"PA_{n}", room=f"room-{n}")  # each launches its own task, still starting
    stack.advance(60)
    listings = 0
    listed = stack.store.live_workers

    def counted() -> object:
        nonlocal listings
        listings += 1
        return listed()

    monkeypatch.setattr(stack.store, "live_workers", counted)

    report = stack.sweep()

    assert report.rooms_visited == 20
    assert listings <= 3, "the sweep's own listing and the pool's, not one per waiting room"
