"""The task-events Lambda in-process: EventBridge "ECS Task State Change" events on moto."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from control_plane.worker_protocol import worker_pk
from handlers import task_events, timer, webhook
from local.fixtures import (
    TABLE,
    LambdaContext,
    LocalAws,
    ecs_task_state_change,
    http_api_event,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)


def item(aws: LocalAws, pk: str) -> dict[str, Any]:
    return aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}}).get("Item", {})


def active_room(aws: LocalAws) -> tuple[str, str]:
    """A human in room-1 with its agent dispatched; returns the task ARN and launch token."""
    aws.livekit.state.add_participant("room-1", "PA_1", "alice")
    room_sid = aws.livekit.state.get_room("room-1").sid
    body = webhook_body("participant_joined", sid="PA_1", room_sid=room_sid, created_at=int(time.time()))
    webhook.handler(
        http_api_event(body, signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)),
        LambdaContext(),
    )
    agent = item(aws, "ROOM#room-1")["agent"]["M"]
    task_arn, token = agent["task_arn"]["S"], agent["launch_token"]["S"]
    worker_registers(aws)
    timer.handler(sqs_event(aws.queue_url), LambdaContext())
    assert item(aws, "ROOM#room-1")["state"]["S"] == "active"
    return task_arn, token


def handle(event: dict[str, Any]) -> str:
    return str(task_events.handler(event, LambdaContext())["outcome"])


def test_task_states_update_the_worker_record_and_late_events_are_ignored(aws: LocalAws) -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/0f0e0d0c0b0a09080706050403020100"

    assert handle(ecs_task_state_change(arn, "RUNNING", 2, room="room-9")) == "recorded"
    running = item(aws, worker_pk(arn, ""))
    assert (running["status"]["S"], running["last_status"]["S"], running["attention"]["S"]) == (
        "starting",
        "RUNNING",
        "worker",
    )
    assert running["launched_for"]["S"] == "room-9"

    assert (
        handle(ecs_task_state_change(arn, "STOPPED", 5, stop_code="UserInitiated", exit_code=143))
        == "recorded"
    )
    assert handle(ecs_task_state_change(arn, "RUNNING", 3)) == "stale"

    stopped = item(aws, worker_pk(arn, ""))
    assert (stopped["status"]["S"], stopped["ecs_version"]["N"], stopped["stop_code"]["S"]) == (
        "stopped",
        "5",
        "UserInitiated",
    )
    assert "attention" not in stopped, "a stopped worker leaves the sweeper's index"


def test_crash_removes_the_agent_and_schedules_a_delayed_respawn(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    arn, token = active_room(aws)
    capsys.readouterr()

    outcome = handle(
        ecs_task_state_change(
            arn,
            "STOPPED",
            6,
            room="room-1",
            launch_token=token,
            stop_code="EssentialContainerExited",
            stopped_reason="Essential container in task exited",
            exit_code=1,
        )
    )

    assert outcome == "recorded"
    room = item(aws, "ROOM#room-1")
    assert "agent" not in room
    assert len(room["crashes"]["L"]) == 1
    assert aws.livekit.state.list_dispatches("room-1") == []
    queue = aws.client("sqs").get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert queue["ApproximateNumberOfMessagesDelayed"] == "1", "the respawn waits out its backoff"
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("AgentCrashes") in (1.0, [1.0]) for doc in emf)


def test_events_of_other_tasks_are_ignored(aws: LocalAws) -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/00112233445566778899aabbccddeeff"

    assert handle(ecs_task_state_change(arn, "RUNNING", 2, started_by="ecs-svc/1234")) == "ignored"
    assert handle(ecs_task_state_change(arn, "RUNNING", 2, cluster="someone-elses")) == "ignored"
    assert item(aws, worker_pk(arn, "")) == {}


def test_malformed_event_is_dropped_without_a_retry(aws: LocalAws) -> None:
    event = ecs_task_state_change("arn:aws:ecs:us-east-1:123456789012:task/x/y", "RUNNING", 2)
    del event["detail"]["version"]

    assert handle(event) == "malformed"
