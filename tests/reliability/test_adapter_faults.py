"""The real adapters meeting real AWS and LiveKit errors, through the Lambda handlers (moto).

Faults are botocore hooks on every client the Lambda code creates (``faults.AwsFaults``): an
error instead of the call, a crafted reply (RunTask ``failures[]``), the reply lost after moto
carried the call out, or a concurrent writer acting first. LiveKit timeouts come from the fake
server answering slower than the gateway waits. Time is moved on through the Lambdas' clock
where the control plane waits (a respawn 10 s later), instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import boto3
import pytest

from control_plane import composition
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.ports import LiveRoom
from control_plane.room import ChangeKind, ParticipantChange
from control_plane.worker_protocol import GraceExpired, Respawn
from local.fixtures import TABLE, LambdaContext, LocalAws, sqs_event, worker_registers
from tests.integration.test_webhook_handler import emitted_metrics
from tests.reliability.faults import AwsFault, AwsFaults, aws_error, throttled
from tests.reliability.invariants import (
    agent_for_every_room_with_humans,
    at_most_one_agent,
    aws_views,
    holds,
    no_agent_without_humans,
    tracked_while_humans,
)
from tests.reliability.lambdas import invoke, livekit_body, outcome, status, timer_job, webhook_job
from tests.reliability.report import Figures

ROOM = "room-1"
DYNAMODB_WRITES = ("dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem")
RESPAWN_WAIT_SECONDS = 11


class ShiftedClock:
    """The Lambdas' clock, moved forward by hand (their SystemClock reads ``time.time()``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        monkeypatch.setattr(composition.SystemClock, "now", lambda _self: time.time() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch, aws: LocalAws) -> AwsFaults:
    return AwsFaults(monkeypatch)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    return ShiftedClock(monkeypatch)


@pytest.fixture
def live(aws: LocalAws) -> LiveRoom:
    room = aws.livekit.state.open_room(ROOM, departure_timeout=70)
    aws.livekit.state.add_participant(ROOM, "PA_1", "alice")
    return room


def post(aws: LocalAws, body: bytes) -> dict[str, Any]:
    return invoke(webhook_job(aws, body), LambdaContext())


def deliver_with_retries(aws: LocalAws, body: bytes, attempts: int = 3) -> tuple[dict[str, Any], int]:
    """LiveKit's delivery: again while the answer is 5xx. Returns the last answer and the retries."""
    response = post(aws, body)
    retries = 0
    while status(response) >= 500 and retries < attempts:
        retries += 1
        response = post(aws, body)
    return response, retries


def respawn(room: str = ROOM) -> dict[str, Any]:
    return invoke(timer_job(Respawn(room=room, attempt=1), "respawn"), LambdaContext())


def one_agent(aws: LocalAws) -> list[str]:
    views = aws_views(aws, [ROOM])
    return (
        at_most_one_agent(views)
        + agent_for_every_room_with_humans(views, time.time())
        + tracked_while_humans(views)
    )


def dispatched(aws: LocalAws) -> None:
    """The room's worker registers and its ready message is handled: the agent is dispatched."""
    worker_registers(aws, ROOM)
    assert invoke({"handler": "timer", "event": sqs_event(aws.queue_url)}, LambdaContext()) == {
        "batchItemFailures": []
    }
    assert len(aws.livekit.state.list_dispatches(ROOM)) == 1


def delayed_messages(aws: LocalAws) -> int:
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def nth_write(n: int) -> Any:
    """A predicate that is true on the ``n``-th DynamoDB write it is asked about."""
    seen = [0]

    def nth(_params: Any) -> bool:
        seen[0] += 1
        return seen[0] == n

    return nth


@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_dynamodb_throttled_on_any_write_of_a_join_is_retried_by_livekit_without_a_second_task(
    aws: LocalAws, faults: AwsFaults, live: LiveRoom, nth: int, figures: Figures
) -> None:
    counter = nth_write(nth)
    for operation in DYNAMODB_WRITES:
        faults.arm(
            AwsFault(operation, lambda op=operation: throttled(op.split(".")[1]), when=counter, times=1)
        )
    scenario = f"DynamoDB throttled on write {nth} of a join (real adapter)"

    response, retries = deliver_with_retries(aws, livekit_body("participant_joined", live, sid="PA_1"))

    views = aws_views(aws, [ROOM])
    figures.record(
        scenario,
        "5xx, LiveKit's retry applies it, 1 task",
        faults=faults.total,
        replayed=retries,
        duplicates=sum(max(0, len(v.tasks) - 1) for v in views),
    )
    assert faults.total == 1, f"the join made fewer than {nth} writes"
    assert status(response) == 200 and outcome(response) == "applied", response
    assert retries == 1
    holds(one_agent(aws))


def test_dynamodb_conditional_conflict_on_the_launch_claim_is_decided_again(
    aws: LocalAws, faults: AwsFaults, live: LiveRoom, figures: Figures
) -> None:
    """Bob's join (another Lambda) lands between this Lambda's read and its versioned put."""
    other_lambda = DynamoDBStore(boto3.session.Session().client("dynamodb", region_name="us-east-1"), TABLE)

    def bob_joins() -> None:
        aws.livekit.state.add_participant(ROOM, "PA_2", "bob")
        other_lambda.observe_participant(
            ParticipantChange(
                kind=ChangeKind.JOINED,
                room=ROOM,
                room_sid=live.sid,
                sid="PA_2",
                identity="bob",
                at=time.time(),
                room_created_at=live.created_at,
            )
        )

    faults.arm(
        AwsFault(
            "dynamodb.PutItem",
            interleave=bob_joins,
            when=lambda params: "version" in str(params.get("ConditionExpression", "")),
        )
    )

    response = post(aws, livekit_body("participant_joined", live, sid="PA_1"))

    record = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE).get(ROOM)
    views = aws_views(aws, [ROOM])
    figures.record(
        "DynamoDB conditional conflict on the launch claim (real adapter)",
        "re-read, decided again: both humans, 1 task",
        faults=faults.total,
        duplicates=sum(max(0, len(v.tasks) - 1) for v in views),
    )
    assert faults.total == 1
    assert status(response) == 200 and outcome(response) == "applied", response
    assert record is not None and set(record.humans) == {"PA_1", "PA_2"}
    holds(one_agent(aws))


RUN_TASK_FAULTS = {
    "capacity: failures[]": (
        AwsFault(
            "ecs.RunTask",
            reply=(
                200,
                {"tasks": [], "failures": [{"arn": "arn:aws:ecs:capacity", "reason": "RESOURCE:FARGATE"}]},
            ),
        ),
        "TaskLaunchFailures",
    ),
    "throttled before anything started": (
        AwsFault("ecs.RunTask", lambda: aws_error("ThrottlingException", "RunTask")),
        "TaskLaunchOutcomeUnknown",
    ),
    "5xx after the task started (reply lost)": (
        AwsFault("ecs.RunTask", lambda: aws_error("ServerException", "RunTask", 500), after=True),
        "TaskLaunchOutcomeUnknown",
    ),
}


@pytest.mark.parametrize("fault", RUN_TASK_FAULTS)
def test_a_failed_run_task_is_retried_by_the_respawn_timer_and_never_starts_a_second_task(
    aws: LocalAws,
    faults: AwsFaults,
    clock: ShiftedClock,
    live: LiveRoom,
    fault: str,
    figures: Figures,
    capsys: pytest.CaptureFixture[str],
) -> None:
    injected, metric = RUN_TASK_FAULTS[fault]
    faults.arm(injected)
    scenario = f"ECS RunTask {fault} (real adapter)"

    response = post(aws, livekit_body("participant_joined", live, sid="PA_1"))
    metrics = emitted_metrics(capsys.readouterr().out)
    waiting = delayed_messages(aws)
    clock.advance(RESPAWN_WAIT_SECONDS)
    respawned = respawn()

    views = aws_views(aws, [ROOM])
    figures.record(
        scenario,
        f"200, {metric} counted, respawn 10 s later: 1 task",
        faults=faults.total,
        duplicates=sum(max(0, len(v.tasks) - 1) for v in views),
    )
    assert faults.total == 1
    assert status(response) == 200 and outcome(response) == "applied", response
    assert metrics.get(metric) == [1.0] or metrics.get(metric) == 1.0, metrics
    assert waiting == 1, "a respawn timer is waiting"
    assert respawned == {"batchItemFailures": []}
    holds(one_agent(aws))


def test_sqs_send_failing_for_the_grace_timer_is_retried_by_livekit_and_sends_one_timer(
    aws: LocalAws, faults: AwsFaults, live: LiveRoom, figures: Figures
) -> None:
    assert status(post(aws, livekit_body("participant_joined", live, sid="PA_1"))) == 200
    dispatched(aws)
    faults.arm(
        AwsFault(
            "sqs.SendMessage",
            lambda: aws_error("RequestThrottled", "SendMessage"),
            when=lambda params: "grace_expired" in str(params.get("MessageBody")),
        )
    )
    aws.livekit.state.remove_participant(ROOM, "PA_1")

    response, retries = deliver_with_retries(aws, livekit_body("participant_left", live, sid="PA_1"))

    record = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE).get(ROOM)
    figures.record(
        "SQS SendMessage failed for the grace timer (real adapter)",
        "5xx, LiveKit's retry sends 1 timer",
        faults=faults.total,
        replayed=retries,
        duplicates=max(0, delayed_messages(aws) - 1),
    )
    assert faults.total == 1 and retries == 1
    assert status(response) == 200
    assert record is not None and record.grace is not None
    assert delayed_messages(aws) == 1


@pytest.fixture
def impatient_gateway(monkeypatch: pytest.MonkeyPatch, aws: LocalAws) -> Iterator[None]:
    """The webhook Lambda's LiveKit gateway gives up after 0.3 s."""
    from control_plane.adapters.livekit_gateway import LiveKitApiGateway

    @lru_cache(maxsize=1)
    def gateway() -> LiveKitApiGateway:
        return LiveKitApiGateway(
            composition.settings().livekit_url, composition.livekit_credentials, timeout_seconds=0.3
        )

    monkeypatch.setattr(composition, "livekit_gateway", gateway)
    composition.reset()
    yield
    composition.reset()


def test_livekit_timing_out_at_grace_expiry_fails_the_message_and_its_redelivery_removes_the_agent(
    aws: LocalAws, impatient_gateway: None, clock: ShiftedClock, live: LiveRoom, figures: Figures
) -> None:
    assert status(post(aws, livekit_body("participant_joined", live, sid="PA_1"))) == 200
    dispatched(aws)
    aws.livekit.state.remove_participant(ROOM, "PA_1")
    assert status(post(aws, livekit_body("participant_left", live, sid="PA_1"))) == 200
    store = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
    grace = store.get(ROOM).grace
    assert grace is not None
    clock.advance(grace.deadline - time.time() + 1)
    expired = timer_job(GraceExpired(room=ROOM, generation=grace.generation), "grace")
    aws.livekit.latency = 1.0

    slow = invoke(expired, LambdaContext())
    aws.livekit.latency = 0.0
    redelivered = invoke(expired, LambdaContext())

    views = aws_views(aws, [ROOM])
    figures.record(
        "LiveKit timeout at grace expiry (real gateway)",
        "message fails alone, SQS redelivery removes the agent",
        faults=1,
        replayed=1,
        duplicates=sum(max(0, len(v.tasks) - 1) for v in views),
    )
    assert slow == {"batchItemFailures": [{"itemIdentifier": "grace"}]}, slow
    assert redelivered == {"batchItemFailures": []}, redelivered
    holds(at_most_one_agent(views), no_agent_without_humans(views))
    assert store.get(ROOM).state.value == "closed"
