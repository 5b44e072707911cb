"""Timers: the twin and SQS agree on delays, bounds and the message body, whatever room name
it carries; every body SQS receives is checked against the characters botocore's model allows."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from control_plane.adapters.memory.runtime import InMemoryTimers, VirtualClock
from control_plane.adapters.sqs_timers import SqsTimers
from control_plane.worker_protocol import TIMER_MESSAGE, GraceExpired, WorkerReady
from tests.aws_models import NASTY_ROOM_NAMES, is_valid_sqs_body


@pytest.fixture(params=["twin", "sqs"])
def timers(request: pytest.FixtureRequest) -> Iterator[tuple[InMemoryTimers | SqsTimers, object]]:
    if request.param == "twin":
        timers = InMemoryTimers(VirtualClock())
        yield timers, lambda: [s.message for s in timers.sent]
        return
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="timers")["QueueUrl"]

        def queued() -> list[object]:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            delayed = int(attributes["ApproximateNumberOfMessagesDelayed"])
            visible = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            assert all(is_valid_sqs_body(m["Body"]) for m in visible)
            return [TIMER_MESSAGE.validate_json(m["Body"]) for m in visible] + ["delayed"] * delayed

        yield SqsTimers(sqs, url), queued


def test_immediate_and_delayed_messages(timers: tuple[InMemoryTimers | SqsTimers, object]) -> None:
    port, queued = timers
    ready = WorkerReady(task_arn="arn:task/1", room="room-1")
    port.send(ready, 0)
    port.send(GraceExpired(room="room-1", generation=3), 60)

    seen = queued()  # type: ignore[operator]
    assert ready in seen
    assert len(seen) == 2


@pytest.mark.parametrize("delay", [-1, 901])
def test_delays_outside_sqs_bounds_are_refused(
    timers: tuple[InMemoryTimers | SqsTimers, object], delay: int
) -> None:
    port, queued = timers
    with pytest.raises(ValueError, match="DelaySeconds"):
        port.send(GraceExpired(room="room-1", generation=1), delay)
    assert queued() == []  # type: ignore[operator]


def test_a_timer_arrives_as_sent_whatever_its_room_name_holds(
    timers: tuple[InMemoryTimers | SqsTimers, object], subtests: pytest.Subtests
) -> None:
    port, queued = timers
    for name in NASTY_ROOM_NAMES:
        with subtests.test(name=name):
            grace, ready = (
                GraceExpired(room=name, generation=2),
                WorkerReady(task_arn="arn:task/1", room=name),
            )
            port.send(grace, 0)
            port.send(ready, 0)

            seen = queued()  # type: ignore[operator]

            assert grace in seen
            assert ready in seen


def test_a_room_name_that_is_not_unicode_never_reaches_sqs() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="timers")["QueueUrl"]

        with pytest.raises(ValueError, match="not valid Unicode"):
            SqsTimers(sqs, url).send(GraceExpired(room="lone \ud800 surrogate", generation=1), 0)

        assert "Messages" not in sqs.receive_message(QueueUrl=url)
