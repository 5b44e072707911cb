"""GET /stats, POST /gc and GET /openapi.json through the API handler on moto and the fake LiveKit."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from api import spec
from api.counters import CloudWatchCounters
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from handlers import api as api_handler
from local.fixtures import TABLE
from tests.api_harness import ApiCalls, agent_ready, human, task_status


def put_counts(metric: str, by_service: dict[str, float], at: datetime | None = None) -> None:
    """What the functions' EMF lines become in CloudWatch: one series per ``service``."""
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    for service, value in by_service.items():
        cloudwatch.put_metric_data(
            Namespace="LiveKitAgentLifecycle",
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "service", "Value": service}],
                    "Value": value,
                    "Unit": "Count",
                    "Timestamp": at or datetime.now(UTC) - timedelta(minutes=5),
                }
            ],
        )


def test_stats_count_rooms_agents_warm_slots_and_the_last_hour(api: ApiCalls) -> None:
    human(api, "participant_joined", "busy", "PA_1")
    agent_ready(api, "busy")
    human(api, "participant_joined", "quiet", "PA_2")
    human(api, "participant_left", "quiet", "PA_2")
    DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE).put_worker(
        WorkerRecord(
            task_arn="arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/warm",
            status=WorkerStatus.READY,
            capacity=2,
            heartbeat_at=time.time(),
        )
    )
    put_counts("AgentTasksLaunched", {"livekit-webhook": 3, "livekit-api": 2, "livekit-timer": 1})
    put_counts("AgentTasksLaunched", {"livekit-webhook": 50}, at=datetime.now(UTC) - timedelta(hours=2))
    put_counts("AgentsRemoved", {"livekit-timer": 4, "livekit-sweeper": 1})
    put_counts("GraceCancelled", {"livekit-webhook": 2})
    put_counts("AgentCrashes", {"livekit-task-events": 1})

    body = api.get("/stats").body

    assert body["rooms_by_state"] == {
        "idle": 0,
        "starting": 0,
        "active": 1,
        "grace": 1,
        "stopping": 0,
        "closed": 0,
        "failed": 0,
    }
    assert body["active_agents"] == 2
    assert body["warm_slots"] == 2, "the idle ready worker no room uses"
    assert body["last_hour"] == {"agent_starts": 6, "agent_stops": 5, "grace_cancels": 2, "crashes": 1}


def test_stats_say_nothing_was_measured_rather_than_zeros(api: ApiCalls) -> None:
    """No task runs and nothing put a metric in CloudWatch (the local stack feeds none): null,
    not an oldest agent of 0 s and a last hour of zeros."""
    body = api.get("/stats").body

    assert body["oldest_agent_age_seconds"] is None
    assert body["last_hour"] is None


def test_stats_still_answer_when_cloudwatch_cannot_be_read(
    api: ApiCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: CloudWatchCounters, now: float) -> dict[str, int] | None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetMetricData")

    monkeypatch.setattr(CloudWatchCounters, "last_hour", refuse)
    human(api, "participant_joined", "busy", "PA_1")

    answer = api.get("/stats")

    assert answer.status == 200
    assert answer.body["last_hour"] is None and answer.body["active_agents"] == 1


def test_gc_runs_one_sweep_now_and_reports_it(api: ApiCalls) -> None:
    human(api, "participant_joined", "gone", "PA_1")
    api.aws.livekit.state.close_room("gone")  # LiveKit closed it; its room_finished webhook was lost
    store = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
    stale = store.get("gone")
    assert stale is not None and stale.agent is not None and stale.agent.task_arn is not None
    store.save(stale.model_copy(update={"updated_at": time.time() - 120}), stale.version)

    answer = api.post("/gc")

    assert answer.status == 200, answer
    assert answer.body["complete"] is True and answer.body["rooms_visited"] == 1
    assert answer.body["counts"]["RoomsGone"] == 1
    assert api.get("/rooms/gone").body["state"] == "closed"
    assert task_status(stale.agent.task_arn) == "STOPPED"


def test_the_openapi_document_is_served(api: ApiCalls) -> None:
    answer = api.get("/openapi.json")

    assert answer.status == 200
    assert answer.body == json.loads(spec.document(api_handler.app))
    assert answer.body["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
