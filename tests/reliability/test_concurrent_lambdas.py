"""Storms of simultaneous Lambdas against a moto server, each in its own process.

Reuses ``invoke_all_at_once`` from ``tests/integration/test_concurrency.py`` (a fresh process per
invocation, released together by a barrier) through ``lambdas.at_once``: one entry point for
every handler, so webhooks, timer messages and a sweep race in one burst. moto answers one
request at a time (``atomic_moto_server.py``: DynamoDB's conditional writes are atomic). LiveKit
is the fake server in this process; its state is kept true (participants join and leave there
before their webhooks are sent). A webhook answered 5xx is retried the way LiveKit would.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import boto3
import pytest

from control_plane import composition
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.ports import LiveRoom
from control_plane.worker_protocol import GraceExpired, WorkerReady
from local.fixtures import TABLE, LambdaContext, LocalAws, sqs_event, worker_registers
from tests.reliability.invariants import (
    GRACE_SLACK_SECONDS,
    RoomView,
    agent_for_every_room_with_humans,
    at_most_one_agent,
    aws_views,
    holds,
    no_agent_without_humans,
    tracked_while_humans,
)
from tests.reliability.lambdas import (
    Job,
    at_once,
    invoke,
    livekit_body,
    outcome,
    retry_server_errors,
    status,
    sweeper_job,
    timer_job,
    webhook_job,
)
from tests.reliability.report import Figures

pytestmark = pytest.mark.moto_server

SHORT_GRACE_SECONDS = 2


def store() -> DynamoDBStore:
    return DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)


def duplicates_in(views: list[RoomView]) -> int:
    return sum(max(0, len(v.tasks) - 1) + max(0, len(v.dispatches) - 1) for v in views)


def join_in_livekit(aws: LocalAws, live: LiveRoom, sid: str) -> Job:
    aws.livekit.state.add_participant(live.name, sid, f"human-{sid}")
    return webhook_job(aws, livekit_body("participant_joined", live, sid=sid, identity=f"human-{sid}"))


def leave_in_livekit(aws: LocalAws, live: LiveRoom, sid: str) -> Job:
    aws.livekit.state.remove_participant(live.name, sid)
    return webhook_job(aws, livekit_body("participant_left", live, sid=sid, identity=f"human-{sid}"))


def deliver_now(job: Job) -> dict[str, Any]:
    response = invoke(job, LambdaContext())
    assert status(response) == 200 or response.get("batchItemFailures") == [], response
    return response


def run_due_timers(aws: LocalAws) -> int:
    """Hand what the timer queue has made visible to the timer Lambda (SQS delays are wall-clock)."""
    handled = 0
    while records := sqs_event(aws.queue_url)["Records"]:
        result = invoke({"handler": "timer", "event": {"Records": records}}, LambdaContext())
        assert result.get("batchItemFailures") == [], result
        handled += len(records)
    return handled


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch, server_aws: LocalAws) -> LocalAws:
    """Grace of 2 s, so "grace + 5 s" can be waited out; spawned Lambdas inherit the environment."""
    monkeypatch.setenv("GRACE_PERIOD_SECONDS", str(SHORT_GRACE_SECONDS))
    composition.reset()
    return server_aws


def test_fifty_way_join_storm_on_one_room_starts_one_agent(server_aws: LocalAws, figures: Figures) -> None:
    aws = server_aws
    live = aws.livekit.state.open_room("storm", departure_timeout=70)
    joins = [join_in_livekit(aws, live, f"PA_{i}") for i in range(40)]
    jobs = joins + joins[:10]  # ten of them delivered twice at once: LiveKit retrying a slow answer
    scenario = "50-way join storm on one room"
    figures.record(scenario, "1 task, 1 dispatch, 40 humans", storm=len(jobs), replayed=10, faults=0)

    responses = at_once(jobs)
    retried = retry_server_errors(jobs, responses)

    by_event: dict[str, list[str]] = defaultdict(list)
    for job, response in zip(jobs, responses, strict=True):
        by_event[job["event"]["body"]].append(outcome(response))
    assert all(sorted(seen) in (["applied"], ["applied", "duplicate"]) for seen in by_event.values()), (
        by_event
    )
    views = aws_views(aws, ["storm"])
    record = store().get("storm")
    assert record is not None and len(record.humans) == 40

    worker_registers(aws, "storm")
    ready = WorkerReady(task_arn=record.agent.task_arn, room="storm") if record.agent else None
    assert ready is not None
    redelivered = [timer_job(ready, f"ready-{i}") for i in range(5)]
    results = at_once(redelivered)

    assert results == [{"batchItemFailures": []}] * 5
    dispatched = aws_views(aws, ["storm"])
    figures.record(
        scenario,
        "1 task, 1 dispatch, 40 humans",
        storm=len(jobs) + len(redelivered),
        replayed=10 + len(redelivered) - 1 + retried,
        duplicates=duplicates_in(views) + duplicates_in(dispatched),
        create_dispatch_calls=aws.livekit.requests["CreateDispatch"],
    )
    holds(
        at_most_one_agent(views + dispatched),
        agent_for_every_room_with_humans(views, time.time()),
        tracked_while_humans(views),
        agent_for_every_room_with_humans(dispatched, time.time(), dispatched=True),
    )
    assert aws.livekit.requests["CreateDispatch"] == 1


def test_joins_and_leaves_interleaved_across_twenty_rooms(short_grace: LocalAws, figures: Figures) -> None:
    """Each room: A joins and leaves at the same moment (either order: leave wins); in every
    other room B is already there with an agent. Rooms with B keep exactly that agent; the
    others have none after grace + 5 s."""
    aws = short_grace
    rooms = [aws.livekit.state.open_room(f"room-{r:02}", departure_timeout=70) for r in range(20)]
    for live in rooms[::2]:
        deliver_now(join_in_livekit(aws, live, f"PA_B{live.name}"))
    with_b = {live.name for live in rooms[::2]}
    agents = {view.name: view.tasks for view in aws_views(aws, with_b) if view.name in with_b}
    assert all(len(tasks) == 1 for tasks in agents.values()), agents
    jobs: list[Job] = []
    for r, live in enumerate(rooms):
        jobs.append(join_in_livekit(aws, live, f"PA_A{r}"))
        jobs.append(leave_in_livekit(aws, live, f"PA_A{r}"))
    scenario = "joins and leaves interleaved across 20 rooms"
    figures.record(scenario, "1 agent where B stayed, none elsewhere", storm=len(jobs), faults=0)

    responses = at_once(jobs)
    retried = retry_server_errors(jobs, responses)

    assert [status(r) for r in responses] == [200] * len(jobs), [r for r in responses if status(r) != 200]
    names = [live.name for live in rooms]
    views = aws_views(aws, names)
    for r, name in enumerate(names):
        record = store().get(name)
        expected = {f"PA_B{name}"} if r % 2 == 0 else set()
        assert record is not None and set(record.humans) == expected, (name, record and record.humans)
    assert {view.name: view.tasks for view in views if view.name in agents} == agents, "B's agent stays"
    holds(
        at_most_one_agent(views),
        agent_for_every_room_with_humans(views, time.time()),
        tracked_while_humans(views),
        context={"retried": retried},
    )

    time.sleep(SHORT_GRACE_SECONDS + GRACE_SLACK_SECONDS)
    timers = run_due_timers(aws)
    settled = aws_views(aws, names)
    figures.record(
        scenario,
        "1 agent where B stayed, none elsewhere",
        replayed=retried,
        duplicates=duplicates_in(views) + duplicates_in(settled),
        grace_timers=timers,
    )
    holds(at_most_one_agent(settled), no_agent_without_humans(settled))


def test_the_sweeper_running_during_a_webhook_burst(short_grace: LocalAws, figures: Figures) -> None:
    """Six active rooms, two whose first join was lost; then at once: a sweep, three last
    leaves, three second joins and eight first joins of new rooms."""
    aws = short_grace
    state = aws.livekit.state
    active = [state.open_room(f"active-{i}", departure_timeout=70) for i in range(6)]
    for live in active:
        deliver_now(join_in_livekit(aws, live, f"PA_{live.name}"))
    lost = [state.open_room(f"lost-{i}", departure_timeout=70) for i in range(2)]
    for live in lost:
        state.add_participant(live.name, f"PA_{live.name}", "human")  # its webhook never came
    fresh = [state.open_room(f"new-{i}", departure_timeout=70) for i in range(8)]
    jobs = [sweeper_job()]
    jobs += [leave_in_livekit(aws, live, f"PA_{live.name}") for live in active[:3]]
    jobs += [join_in_livekit(aws, live, f"PA_{live.name}-2") for live in active[3:]]
    jobs += [join_in_livekit(aws, live, f"PA_{live.name}") for live in fresh]
    scenario = "sweeper during a webhook burst"
    figures.record(
        scenario, "no join undone, lost joins adopted, 1 agent each", storm=len(jobs), faults=len(lost)
    )

    responses = at_once(jobs)
    retried = retry_server_errors(jobs, responses)

    sweep = responses[0]
    assert "error" not in sweep, sweep
    assert [status(r) for r in responses[1:]] == [200] * (len(jobs) - 1)
    names = [live.name for live in active + lost + fresh]
    views = aws_views(aws, names)
    holds(
        at_most_one_agent(views),
        agent_for_every_room_with_humans(views, time.time()),
        tracked_while_humans(views),
        context={"sweep": sweep, "retried": retried},
    )

    time.sleep(SHORT_GRACE_SECONDS + GRACE_SLACK_SECONDS)
    timers = run_due_timers(aws)
    settled = aws_views(aws, names)
    figures.record(
        scenario,
        "no join undone, lost joins adopted, 1 agent each",
        replayed=retried,
        duplicates=duplicates_in(views) + duplicates_in(settled),
        rooms=len(names),
        grace_timers=timers,
    )
    holds(
        at_most_one_agent(settled),
        no_agent_without_humans(settled),
        agent_for_every_room_with_humans(settled, time.time()),
        context={"sweep": sweep, "grace timers run": timers},
    )


def test_the_same_timer_message_delivered_twice_at_once(short_grace: LocalAws, figures: Figures) -> None:
    aws = short_grace
    state = aws.livekit.state
    ready_room = state.open_room("ready-twice", departure_timeout=70)
    deliver_now(join_in_livekit(aws, ready_room, "PA_1"))
    task = worker_registers(aws, ready_room.name)
    grace_room = state.open_room("grace-twice", departure_timeout=70)
    deliver_now(join_in_livekit(aws, grace_room, "PA_2"))
    worker_registers(aws, grace_room.name)
    run_due_timers(aws)  # both ready messages: grace-twice gets its dispatch, ready-twice too
    deliver_now(leave_in_livekit(aws, grace_room, "PA_2"))
    graced = store().get(grace_room.name)
    assert graced is not None and graced.grace is not None
    time.sleep(SHORT_GRACE_SECONDS + 0.5)
    ready_again = timer_job(WorkerReady(task_arn=task, room=ready_room.name), "ready")
    expired = timer_job(GraceExpired(room=grace_room.name, generation=graced.grace.generation), "grace")
    jobs = [ready_again, ready_again, expired, expired]
    before = Counter(aws.livekit.requests)
    scenario = "same timer message delivered twice at once"
    figures.record(scenario, "one dispatch kept, one removal", storm=len(jobs), replayed=2, faults=0)

    results = at_once(jobs)

    calls = Counter(aws.livekit.requests) - before
    views = aws_views(aws, [ready_room.name, grace_room.name])
    figures.record(
        scenario,
        "one dispatch kept, one removal",
        duplicates=duplicates_in(views) + calls["CreateDispatch"] + max(0, calls["DeleteDispatch"] - 1),
    )
    assert results == [{"batchItemFailures": []}] * len(jobs)
    assert calls["CreateDispatch"] == 0, "the ready worker's dispatch exists: a redelivery creates none"
    assert calls["DeleteDispatch"] == 1, "the grace expiry removes the dispatch once"
    holds(at_most_one_agent(views), no_agent_without_humans(views))
    holds(agent_for_every_room_with_humans(views, time.time(), dispatched=True))
    assert store().get(grace_room.name).state.value == "closed"
