"""The warm pool's edges under storms (issue 18): launches racing at ``MAX_TASKS``, reconnect
storms of ``worker_ready``, release races and orphaned reservations.

The first two run as simultaneous Lambdas on the atomic moto server (``lambdas.at_once``); the
last two replay every interleaving of a concurrent writer on the twins, where the exact moment
can be chosen (the contract suite holds the DynamoDB adapter to the same writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import boto3
import pytest

from control_plane import composition, reconcile
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.dynamodb_task_count import DynamoDBTaskCount
from control_plane.room import Room
from control_plane.worker_protocol import WorkerReady
from local.fixtures import TABLE, LocalAws, worker_registers
from tests.harness import POLICY, POOL_POLICY, TwinStack
from tests.reliability.invariants import running_tasks_by_room
from tests.reliability.lambdas import at_once, retry_server_errors, status, timer_job
from tests.reliability.report import Figures
from tests.reliability.test_concurrent_lambdas import deliver_now, join_in_livekit, run_due_timers

MAX_TASKS = 5
FIRST_JOINS = 20


def store() -> DynamoDBStore:
    return DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)


@pytest.mark.moto_server
def test_twenty_first_joins_at_once_launch_at_most_max_tasks(
    server_aws: LocalAws, monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    monkeypatch.setenv("MAX_TASKS", str(MAX_TASKS))
    composition.reset()
    aws = server_aws
    rooms = [aws.livekit.state.open_room(f"cap-{i:02}", departure_timeout=130) for i in range(FIRST_JOINS)]
    jobs = [join_in_livekit(aws, live, f"PA_{live.name}") for live in rooms]
    scenario = f"{FIRST_JOINS} first joins at once at MAX_TASKS={MAX_TASKS}"
    figures.record(scenario, f"at most {MAX_TASKS} tasks, the rest wait", storm=len(jobs), faults=0)

    responses = at_once(jobs)
    retried = retry_server_errors(jobs, responses)

    assert [status(r) for r in responses] == [200] * len(jobs)
    running = [arn for arns in running_tasks_by_room(aws).values() for arn in arns]
    counted = DynamoDBTaskCount(boto3.client("dynamodb", region_name="us-east-1"), TABLE).live()
    waiting = [
        live.name
        for live in rooms
        if (record := store().get(live.name)) and record.agent and record.agent.task_arn is None
    ]
    figures.record(
        scenario,
        f"at most {MAX_TASKS} tasks, the rest wait",
        replayed=retried,
        duplicates=max(0, len(running) - MAX_TASKS),
        tasks_launched=len(running),
        rooms_waiting=len(waiting),
    )
    assert len(running) <= MAX_TASKS, running
    assert set(counted) == set(running), "the shared count is exactly the live tasks"
    assert len(waiting) == FIRST_JOINS - len(running), "every other room waits for a slot or a place"


@pytest.mark.moto_server
def test_a_reconnect_storm_of_worker_ready_leaves_the_cold_start_estimate_alone(
    server_aws: LocalAws, figures: Figures
) -> None:
    aws = server_aws
    live = aws.livekit.state.open_room("reconnects", departure_timeout=130)
    deliver_now(join_in_livekit(aws, live, "PA_1"))
    task_arn = worker_registers(aws, "reconnects")
    run_due_timers(aws)
    measured = store().pool_demand().cold_start_seconds
    storm = [timer_job(WorkerReady(task_arn=task_arn), f"reconnect-{i}") for i in range(20)]
    scenario = "20 worker_ready re-sent at once (a LiveKit restart)"
    figures.record(scenario, "cold start sampled once", storm=len(storm), replayed=len(storm))

    time.sleep(2)  # the storm comes seconds later: a second sample would move the estimate
    results = at_once(storm)

    assert results == [{"batchItemFailures": []}] * len(storm)
    after = store().pool_demand().cold_start_seconds
    figures.record(scenario, "cold start sampled once", duplicates=int(after != measured))
    assert after == measured


# --- release races and orphaned reservations, every interleaving, on the twins -----------------

RELEASE_STEPS = ("release_slot", "pool_workers", "waiting_rooms", "drain_after")


def _another_room_takes_it(stack: TwinStack, arn: str) -> None:
    worker = stack.store.get_worker(arn)
    if worker is not None and "room-b" not in worker.reserved:
        stack.store.reserve_slot(worker, "room-b", stack.clock.now(), jobs_per_task=2)


def _livekit_hands_it_a_job(stack: TwinStack, arn: str) -> None:
    stack.heartbeat(arn, {"room-b": "AJ_9"})


@pytest.mark.parametrize("step", RELEASE_STEPS)
@pytest.mark.parametrize("meanwhile", [_another_room_takes_it, _livekit_hands_it_a_job])
def test_a_worker_taken_at_any_step_of_its_rooms_release_is_never_stopped(
    step: str, meanwhile: Callable[[TwinStack, str], None], figures: Figures
) -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=1, jobs_per_task=2))
    stack.controller.capacity.replenish()
    [warm] = stack.pool_tasks()
    stack.pool_worker_becomes_ready(warm)
    stack.join("PA_1")
    for arn in stack.pool_tasks():
        if not stack.worker_registered(arn):
            stack.pool_worker_becomes_ready(arn)
    original = getattr(stack.store, step)
    armed = [True]

    def interleaved(*args: object, **kwargs: object) -> object:
        if armed[0] and stack.room().stop_requested_at is not None:
            armed[0] = False
            meanwhile(stack, warm)  # another Lambda, or LiveKit, just before this step
        return original(*args, **kwargs)

    setattr(stack.store, step, interleaved)
    stack.leave("PA_1")
    stack.advance(POLICY.grace_seconds - 20)
    for arn in stack.pool_tasks():
        stack.heartbeat(arn)  # still heartbeating: the pool weighs keeping `warm`, and lets it go
    stack.advance(21)

    worker = stack.store.get_worker(warm)
    taken = worker is not None and ("room-b" in worker.reserved or "room-b" in worker.jobs)
    killed = taken and not stack.runner.tasks[warm].running
    scenario = f"release race: {meanwhile.__name__.strip('_').replace('_', ' ')} before {step}"
    figures.record(
        scenario, "a taken worker is never stopped", storm=2, faults=int(not armed[0]), duplicates=int(killed)
    )
    assert not armed[0], f"the race was played before {step}"
    assert not killed, "the worker another room took was SIGTERMed"
    assert not taken or not worker.draining


@pytest.mark.parametrize("rooms", [1, 10])
def test_reservations_whose_room_write_failed_are_reaped_within_a_lease(rooms: int, figures: Figures) -> None:
    stack = TwinStack(pool=replace(POOL_POLICY, warm_tasks=rooms))
    stack.controller.capacity.replenish()
    for arn in stack.pool_tasks():
        stack.pool_worker_becomes_ready(arn)
    save = stack.store.save
    failed = []

    def throttled_when_recording_a_slot(room: Room, expected_version: int) -> Room:
        if room.agent is not None and room.agent.slot_reserved and room.name not in failed:
            failed.append(room.name)
            raise RuntimeError("ProvisionedThroughputExceededException (injected)")
        return save(room, expected_version)

    stack.store.save = throttled_when_recording_a_slot  # type: ignore[method-assign]
    names = [f"room-{i:02}" for i in range(rooms)]
    for name in names:
        with pytest.raises(RuntimeError):
            stack.join(f"PA_{name}", room=name)
    orphaned = sum(len(w.reserved) for w in stack.store.live_workers())
    stack.advance(POLICY.claim_lease_seconds)
    stack.sweep()
    stack.sweep()

    left = [
        (record.task_arn, name)
        for record in stack.store.live_workers()
        for name in record.reserved
        if not reconcile.holds_slot_on(stack.store.get(name), record.task_arn)
    ]
    with_slot = [name for name in names if (agent := stack.room(name).agent) and agent.slot_reserved]
    scenario = f"orphaned reservations: {rooms} room write(s) failed after the slot was taken"
    figures.record(
        scenario,
        "reaped after one lease, every room gets a slot",
        storm=rooms,
        faults=len(failed),
        duplicates=len(left),
        orphaned=orphaned,
        reaped=int(stack.metrics.count_for("OrphanedSlotsReaped")),
    )
    assert orphaned == rooms
    assert left == []
    assert with_slot == names
