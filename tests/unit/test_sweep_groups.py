"""The sweep fanned out over groups: each group heals its own rooms, only the lead judges the
fleet's tasks and lists rooms nobody tracks, and together they heal what one sweep heals."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from control_plane.room import RoomState
from control_plane.shards import ATTENTION_SHARDS, group_shards, shard_of
from control_plane.sweeper.fan_out import GroupEvent, SweepFanOut
from control_plane.sweeper.plan import LIST_ROOMS_NAMES, SweepGroup, fan_out
from control_plane.sweeper.run import SweepReport
from tests.harness import TwinStack

GROUPS = 4


def room_in_group(group: int, skip: int = 0) -> str:
    """A room name whose attention shard belongs to ``group`` of ``GROUPS``."""
    names = (f"room-{n}" for n in range(10_000))
    owned = [name for name in names if shard_of(name, ATTENTION_SHARDS) in group_shards(group, GROUPS)]
    return owned[skip]


def sweep_all(stack: TwinStack, untracked: bool = True) -> list[SweepReport]:
    return (
        [stack.sweep(group=group) for group in fan_out(0.0, GROUPS, 1, 60.0)]
        if untracked
        else [stack.sweep(group=SweepGroup(group, GROUPS, untracked=False)) for group in range(GROUPS)]
    )


def test_group_shards_give_every_shard_one_owner() -> None:
    for groups in range(1, ATTENTION_SHARDS + 1):
        owned = [shard for group in range(groups) for shard in group_shards(group, groups)]
        assert sorted(owned) == list(range(ATTENTION_SHARDS))
    with pytest.raises(ValueError, match="1 to 16"):
        group_shards(0, ATTENTION_SHARDS + 1)


def test_a_group_heals_its_own_rooms_and_leaves_the_others_to_theirs() -> None:
    stack = TwinStack()
    mine, theirs = room_in_group(1), room_in_group(2)
    for n, room in enumerate((mine, theirs)):
        stack.join(f"PA_{n}", room=room)
        stack.worker_becomes_ready(room)
        stack.leave(f"PA_{n}", room=room)
    stack.timers.sent.clear()  # both grace timers lost
    stack.advance(61)

    report = stack.sweep(group=SweepGroup(1, GROUPS, untracked=False))

    assert report.rooms_total == 1 and report.group == 1
    assert stack.room(mine).state is RoomState.CLOSED
    assert stack.room(theirs).state is RoomState.GRACE, "another group's room"
    stack.sweep(group=SweepGroup(2, GROUPS, untracked=False))
    assert stack.room(theirs).state is RoomState.CLOSED


def test_a_group_lists_only_its_tracked_rooms_by_name_and_finds_one_livekit_closed() -> None:
    stack = TwinStack()
    rooms = [room_in_group(3, n) for n in range(3)]
    for n, room in enumerate(rooms):
        stack.join(f"PA_{n}", room=room)
        stack.worker_becomes_ready(room)
    stack.livekit.open_room("nobody-tracks-this")
    stack.livekit.close_room(rooms[0])
    stack.advance(30)
    listed: list[tuple[str, ...]] = []
    original = stack.sweeper._livekit.alist_rooms  # type: ignore[attr-defined]

    async def spy(names: tuple[str, ...] | list[str] = ()) -> list[object]:
        listed.append(tuple(names))
        return await original(names)

    stack.sweeper._livekit.alist_rooms = spy  # type: ignore[attr-defined]
    report = stack.sweep(group=SweepGroup(3, GROUPS, untracked=False))

    assert listed == [tuple(sorted(rooms))], "one call, by name: the group's rooms fit one"
    assert report.rooms_total == 3, "the untracked room is not this sweep's"
    assert stack.room(rooms[0]).state is RoomState.CLOSED, "LiveKit no longer lists it"
    assert LIST_ROOMS_NAMES >= 100


def test_only_the_lead_lists_every_room_and_adopts_a_room_whose_first_join_was_lost() -> None:
    stack = TwinStack()
    tracked = room_in_group(2)
    stack.join("PA_1", room=tracked)
    stack.worker_becomes_ready(tracked)
    lost = room_in_group(1)
    stack.livekit.add_participant(lost, "PA_lost", "human")  # its webhooks never came

    sweep_all(stack, untracked=False)
    assert stack.store.get(lost) is None, "no group lists untracked rooms on this sweep"

    reports = sweep_all(stack)

    assert stack.store.get(lost) is not None and stack.room(lost).humans, "the lead adopted it"
    assert reports[0].rooms_total == 1, "the lead (no rooms of its own): the untracked one only"
    assert stack.room(tracked).state is RoomState.ACTIVE, "a room of group 2 is not untracked"
    assert stack.metrics.counts.get("RoomsAdopted") == 1


def test_the_lead_keeps_tasks_claimed_by_other_groups_rooms_and_stops_orphans() -> None:
    stack = TwinStack()
    rooms = [room_in_group(group) for group in range(1, GROUPS)]
    arns = []
    for n, room in enumerate(rooms):
        stack.join(f"PA_{n}", room=room)
        arns.append(stack.worker_becomes_ready(room))
    orphan = stack.runner.start_foreign("gone", "orphan-token", created_at=stack.clock.now())
    stack.advance(600)

    sweep_all(stack)

    assert not stack.runner.tasks[orphan].running
    assert all(stack.runner.tasks[arn].running for arn in arns), "claimed by rooms of groups 1-3"
    assert stack.metrics.count_for("TasksStopped", Reason="orphan") == 1
    assert all(stack.room(room).state is RoomState.ACTIVE for room in rooms)


def test_a_group_other_than_the_lead_never_lists_every_room() -> None:
    """Only the lead knows which rooms other groups track: any other group told to list the
    untracked rooms still lists only its own, so another group's room is never "untracked"."""
    stack = TwinStack()
    theirs = room_in_group(2)
    stack.join("PA_1", room=theirs)
    stack.worker_becomes_ready(theirs)
    stack.livekit.calls.clear()

    report = stack.sweep(group=SweepGroup(1, GROUPS, untracked=True))

    assert report.rooms_total == 0 and "list_rooms" not in stack.livekit.calls
    assert stack.metrics.counts.get("RoomsAdopted") is None


def test_each_group_resumes_from_its_own_cursor() -> None:
    stack = TwinStack()
    for group in (1, 2):
        for n in range(3):
            room = room_in_group(group, n)
            stack.join(f"PA_{group}_{n}", room=room)
    stack.advance(30)
    stack.sweep(lambda: 0.0, SweepGroup(1, GROUPS, untracked=False))  # out of time at once
    stack.sweep(lambda: 0.0, SweepGroup(2, GROUPS, untracked=False))

    assert stack.store.get_sweep_cursor(1) == min(room_in_group(1, n) for n in range(3))
    assert stack.store.get_sweep_cursor(2) == min(room_in_group(2, n) for n in range(3))
    assert stack.store.get_sweep_cursor(0) is None


def test_untracked_rooms_are_listed_on_one_sweep_in_every_k_by_the_lead_only() -> None:
    minutes = [fan_out(60.0 * n, GROUPS, 3, 60.0) for n in range(6)]
    assert [[g.untracked for g in groups] for groups in minutes] == [
        [n % 3 == 0, False, False, False] for n in range(6)
    ]
    assert [g.group for g in minutes[0]] == list(range(GROUPS))
    assert fan_out(0.0, 1, 1, 60.0) == [SweepGroup()], "one group: the whole sweep, as before"


class Invoker:
    def __init__(self, fail: int | None = None) -> None:
        self.sent: list[SweepGroup] = []
        self.fail = fail

    def invoke(self, group: SweepGroup) -> None:
        if group.group == self.fail:
            raise RuntimeError("throttled")
        self.sent.append(group)


def fan_out_of(stack: TwinStack, groups: int, invoker: Invoker | None) -> SweepFanOut:
    now: Callable[[], float] = stack.clock.now
    return SweepFanOut(stack.sweeper, groups, 1, 60.0, now, invoker)


def test_the_schedule_sends_one_message_per_group_and_sweeps_nothing_itself() -> None:
    stack = TwinStack()
    stack.join("PA_1")
    invoker = Invoker(fail=2)

    report = fan_out_of(stack, GROUPS, invoker).scheduled(lambda: 600.0)

    assert [g.group for g in invoker.sent] == [0, 1, 3] and report.failed == [2]
    assert report.swept == [] and stack.store.get_sweep_cursor() is None
    assert [g.untracked for g in invoker.sent] == [True, False, False]


def test_without_a_queue_one_invocation_sweeps_every_group() -> None:
    """The local stack and ``make dev``: all groups, one after the other, in the schedule's run."""
    stack = TwinStack()
    rooms = [room_in_group(group) for group in range(GROUPS)]
    for n, room in enumerate(rooms):
        stack.join(f"PA_{n}", room=room)
        stack.worker_becomes_ready(room)
        stack.leave(f"PA_{n}", room=room)
    stack.timers.sent.clear()
    stack.advance(61)

    report = fan_out_of(stack, GROUPS, None).scheduled(lambda: 600.0)

    assert [swept.group for swept in report.swept] == list(range(GROUPS))
    assert all(stack.room(room).state is RoomState.CLOSED for room in rooms)


@pytest.mark.parametrize(
    "body",
    [
        '{"sweep_group": 4, "sweep_groups": 4, "untracked": false}',
        '{"sweep_group": 0, "sweep_groups": 17, "untracked": false}',
        '{"sweep_group": 0, "sweep_groups": 2}',
        '{"sweep_group": 0, "sweep_groups": 2, "untracked": false, "extra": 1}',
    ],
)
def test_a_malformed_group_message_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        GroupEvent.model_validate_json(body)


def test_a_group_message_names_its_group() -> None:
    body = json.dumps({"sweep_group": 3, "sweep_groups": 4, "untracked": False})
    assert GroupEvent.model_validate_json(body).group() == SweepGroup(3, 4, untracked=False)
