"""The sweeper Lambda in-process: a Scheduler event in, DynamoDB / ECS / LiveKit repairs out."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from control_plane import composition
from handlers import sweeper, timer, webhook
from local.fixtures import (
    TABLE,
    CallCounter,
    LambdaContext,
    LocalAws,
    http_api_event,
    scheduler_event,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)


@dataclass
class NearDeadline(LambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 5_000


def deliver(aws: LocalAws, kind: str, sid: str) -> None:
    """A webhook for the session the fake LiveKit has open, stamped now."""
    room_sid = aws.livekit.state.get_room("room-1").sid
    body = webhook_body(kind, sid=sid, room_sid=room_sid, created_at=int(time.time()))
    headers = signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    assert webhook.handler(http_api_event(body, headers), LambdaContext())["statusCode"] == 200


def room_item(aws: LocalAws) -> dict[str, Any]:
    return aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#room-1"}})["Item"]


def active_room(aws: LocalAws) -> str:
    """A human in room-1 and its agent dispatched, through the real handlers; returns the task."""
    aws.livekit.state.add_participant("room-1", "PA_1", "alice")
    deliver(aws, "participant_joined", "PA_1")
    task_arn = worker_registers(aws)
    timer.handler(sqs_event(aws.queue_url), LambdaContext())
    assert room_item(aws)["state"]["S"] == "active"
    return task_arn


def emf(out: str) -> list[dict[str, Any]]:
    """Each metric Powertools printed: name, value, dimensions."""
    found = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: document[name] for name in directive["Dimensions"][0]}
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                if isinstance(value, list):  # one metric written more than once in a blob
                    value = sum(value)
                found.append({"name": metric["Name"], "value": value, "dimensions": dimensions})
    return found


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch, aws: LocalAws) -> LocalAws:
    monkeypatch.setenv("GRACE_PERIOD_SECONDS", "1")
    composition.reset()
    return aws


def test_grace_period_whose_timer_was_lost_is_ended_by_the_scheduled_sweep(
    short_grace: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = short_grace
    task_arn = active_room(aws)
    aws.livekit.state.remove_participant("room-1", "PA_1")
    deliver(aws, "participant_left", "PA_1")
    aws.client("sqs").purge_queue(QueueUrl=aws.queue_url)  # the grace timer is lost
    time.sleep(1.1)
    reads = CallCounter(composition.store()._client)
    capsys.readouterr()

    report = sweeper.handler(scheduler_event(), LambdaContext())

    assert report["complete"] is True
    assert room_item(aws)["state"]["S"] == "closed"
    assert aws.livekit.state.list_dispatches("room-1") == []
    [task] = aws.client("ecs").describe_tasks(cluster="livekit-agents", tasks=[task_arn])["tasks"]
    assert task["desiredStatus"] == "STOPPED"
    assert "Scan" not in reads.calls, "the sweep reads the sparse index, never the table"
    assert reads.calls["Query"] >= 2, "rooms and workers from the attention index"
    metrics = emf(capsys.readouterr().out)
    assert {"name": "GraceExpiries", "value": 1.0, "dimensions": {"service": "livekit-sweeper"}} in metrics


def test_duplicate_dispatch_is_deleted_and_counted_by_reason(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second agent is not in LiveKit's participant count: the room's audit finds the extra
    dispatch (here every sweep audits every room)."""
    monkeypatch.setenv("SWEEP_AUDIT_PERIOD_SECONDS", "60")
    composition.reset()
    active_room(aws)
    recorded = room_item(aws)["agent"]["M"]["dispatch_id"]["S"]
    aws.livekit.state.create_dispatch("room-1", "voice-agent", "{}")
    capsys.readouterr()

    sweeper.handler(scheduler_event(), LambdaContext())

    assert [d.dispatch_id for d in aws.livekit.state.list_dispatches("room-1")] == [recorded]
    metrics = emf(capsys.readouterr().out)
    deleted = {"service": "livekit-sweeper", "Reason": "duplicate"}
    assert {"name": "DispatchesDeleted", "value": 1.0, "dimensions": deleted} in metrics
    gauges = {m["name"]: m["value"] for m in metrics if m["dimensions"] == {"service": "livekit-sweeper"}}
    assert gauges["ActiveAgents"] == 1.0
    assert gauges["RunningTasks"] == 1.0
    assert {
        "name": "Rooms",
        "value": 1.0,
        "dimensions": {"service": "livekit-sweeper", "State": "active"},
    } in metrics


def test_livekit_outage_is_counted_and_changes_nothing(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    task_arn = active_room(aws)
    aws.livekit.state.create_dispatch("room-1", "voice-agent", "{}")
    aws.livekit.state.close_room("room-1")  # would be closed by a sweep that could see it
    before = room_item(aws)
    aws.livekit.set_down(True)
    capsys.readouterr()

    report = sweeper.handler(scheduler_event(), LambdaContext())

    assert report["complete"] is True
    assert room_item(aws) == before
    [task] = aws.client("ecs").describe_tasks(cluster="livekit-agents", tasks=[task_arn])["tasks"]
    assert task["desiredStatus"] == "RUNNING"
    metrics = emf(capsys.readouterr().out)
    failure = {"service": "livekit-sweeper", "Source": "livekit"}
    assert {"name": "SweepListingFailures", "value": 1.0, "dimensions": failure} in metrics


def test_sweep_near_the_deadline_leaves_a_cursor_and_the_next_one_resumes(aws: LocalAws) -> None:
    active_room(aws)

    first = sweeper.handler({}, NearDeadline())

    assert (first["complete"], first["rooms_visited"], first["next_cursor"]) == (False, 0, "room-1")
    cursor = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "SWEEP#cursor"}})["Item"]
    assert cursor["cursor"]["S"] == "room-1"

    second = sweeper.handler(scheduler_event(), LambdaContext())

    assert (second["complete"], second["rooms_visited"]) == (True, 1)
    assert "Item" not in aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "SWEEP#cursor"}})
