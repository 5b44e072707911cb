"""What a sweep costs in LiveKit calls: a healthy room none, a room that disagrees with LiveKit's
room list a few, the audit a bounded share; and every call of the sweep within its budget."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from control_plane.ports import LiveKitRateLimited, LiveRoom
from control_plane.room import Agent, Human, Room
from control_plane.sweeper.bridge import BudgetedLiveKit, CallBudget
from control_plane.sweeper.plan import (
    AGENT_JOIN_SECONDS,
    RoomCheck,
    audit_due,
    plan_room_check,
)
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from tests.harness import AGENT, EGRESS, SWEEP_POLICY, TwinStack

NOW = 1_800_000_000.0
NO_AUDIT = replace(SWEEP_POLICY, audit_period_seconds=10**9)


def active_room(stack: TwinStack, room: str = "room-1", sid: str = "PA_1") -> str:
    stack.join(sid, room=room)
    return stack.worker_becomes_ready(room)


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
)
FRESH_DISPATCH = DISPATCHED.model_copy(update={"dispatched_at": NOW - AGENT_JOIN_SECONDS / 2})
READY = WorkerRecord(task_arn="arn:task/1", status=WorkerStatus.READY, capacity=1, heartbeat_at=NOW - 5)
SILENT = READY.model_copy(update={"heartbeat_at": NOW - 600})


def live(participants: int, sid: str = "RM_1") -> LiveRoom:
    return LiveRoom(
        sid=sid, name="r", num_participants=participants, departure_timeout=70, created_at=NOW - 900
    )


def room(humans: dict[str, Human], agent: Agent | None) -> Room:
    return Room(name="r", sid="RM_1", humans=humans, agent=agent, updated_at=NOW - 120)


@pytest.mark.parametrize(
    ("record", "listing", "worker", "audit", "expected"),
    [
        (room(HUMAN, DISPATCHED), live(2), READY, False, RoomCheck.CONSISTENT),
        (room(HUMAN, DISPATCHED), live(2), READY, True, RoomCheck.INSPECT),
        (room(HUMAN, DISPATCHED), live(1), READY, False, RoomCheck.INSPECT),  # human or agent missing
        (room(HUMAN, DISPATCHED), live(3), READY, False, RoomCheck.INSPECT),  # a duplicate agent
        (room(HUMAN, DISPATCHED), live(2), SILENT, False, RoomCheck.INSPECT),  # dispatch suspect
        (room(HUMAN, DISPATCHED), live(2), None, False, RoomCheck.INSPECT),
        (room(HUMAN, FRESH_DISPATCH), live(1), READY, False, RoomCheck.CONSISTENT),  # joining
        (room(HUMAN, FRESH_DISPATCH), live(2), READY, False, RoomCheck.CONSISTENT),
        (room({}, DISPATCHED), live(1), READY, False, RoomCheck.CONSISTENT),  # grace: agent only
        (room(HUMAN, None), live(1), None, False, RoomCheck.CONSISTENT),  # waiting out a backoff
        (room(HUMAN, None), live(2), None, False, RoomCheck.INSPECT),  # someone we missed
        (room(HUMAN, DISPATCHED), None, READY, False, RoomCheck.GONE),
        (room(HUMAN, DISPATCHED), live(2, sid="RM_2"), READY, False, RoomCheck.NEW_SESSION),
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


@pytest.mark.parametrize(
    ("break_it", "most_calls"),
    [
        ("missed_leave", 3),  # ListParticipants, ListDispatch, + removal's ListDispatch
        ("dead_dispatch", 4),  # + DeleteDispatch; CreateDispatch after the failure's backoff
        ("duplicate_dispatch", 3),
    ],
)
def test_a_room_that_disagrees_with_the_room_list_is_inspected_for_a_few_calls(
    break_it: str, most_calls: int
) -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(10):
        active_room(stack, room=f"room-{n}", sid=f"PA_{n}")
    dispatch_id = stack.room("room-3").agent.dispatch_id
    if break_it == "missed_leave":
        stack.livekit.remove_participant("room-3", "PA_3")
    elif break_it == "dead_dispatch":
        stack.livekit.end_jobs("room-3", dispatch_id, "JS_FAILED")
    else:
        stack.livekit.create_dispatch("room-3", "voice-agent", "{}")
    stack.advance(60)
    before = livekit_calls(stack)

    report = stack.sweep()

    assert report.rooms_inspected == 1
    assert livekit_calls(stack) - before <= 1 + 2 + most_calls, "the list, the inspection, the repair"
    if break_it == "missed_leave":
        assert stack.room("room-3").humans == {}
        return
    if break_it == "dead_dispatch":  # a job dead without a report counts as a failure: backoff first
        assert stack.dispatches("room-3") == [] and len(stack.room("room-3").crashes) == 1
        stack.advance(10)
    assert [d.has_running_job for d in stack.dispatches("room-3")] == [True]


@pytest.mark.parametrize("kind", [EGRESS, AGENT], ids=["egress", "another-apps-agent"])
def test_a_healthy_room_with_an_egress_or_another_agent_costs_no_call_after_one_inspection(kind: int) -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    for n in range(5):
        active_room(stack, room=f"room-{n}", sid=f"PA_{n}")
    stack.livekit.add_participant("room-3", "PA_rec", "recorder", kind=kind)
    stack.advance(60)

    first = stack.sweep()
    assert first.rooms_inspected == 1 and stack.room("room-3").others == 1, "counted once, remembered"
    for _ in range(3):
        stack.advance(60)
        before = livekit_calls(stack)
        report = stack.sweep()
        assert (livekit_calls(stack) - before, report.rooms_inspected) == (1, 0), "only the room list"

    stack.livekit.remove_participant("room-3", "PA_rec")  # the recording ends
    stack.advance(60)
    assert stack.sweep().rooms_inspected == 1 and stack.room("room-3").others == 0
    stack.advance(60)
    assert stack.sweep().rooms_inspected == 0
    assert [d.has_running_job for d in stack.dispatches("room-3")] == [True], "our agent untouched"


def test_a_new_session_forgets_the_others_of_the_last() -> None:
    stack = TwinStack(sweep_policy=NO_AUDIT)
    active_room(stack)
    stack.livekit.add_participant("room-1", "PA_rec", "recorder", kind=EGRESS)
    stack.advance(60)
    stack.sweep()
    assert stack.room().others == 1

    stack.leave("PA_1")
    stack.livekit.close_room("room-1")
    stack.deliver("room_finished", room_sid=stack.room().sid)
    stack.join("PA_2", identity="bob")

    assert stack.room().others == 0


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

    async def alist_rooms(self) -> list[LiveRoom]:
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
