"""The API function in-process for tests: API Gateway v2 events in, status and JSON out.

``api`` drives ``handlers/api.py`` on moto and the fake LiveKit (the ``aws`` fixture) the way
API Gateway invokes it once its IAM authorizer let a request through; ``served_api`` puts the
same handler behind a local HTTP API that checks SigV4 (``tests/fakes/api_gateway.py``) for
clients such as the CLI; ``backoff_sleeps`` records LiveKit retry waits instead of sleeping.
Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest

from api import backoff, wiring
from handlers import api as api_handler
from handlers import timer, webhook
from local.fixtures import (
    CLUSTER,
    TABLE,
    LambdaContext,
    LocalAws,
    http_api_event,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)
from tests.fakes.api_gateway import LocalHttpApi


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class ApiCalls:
    aws: LocalAws

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        event = http_api_event(
            data, {"content-type": "application/json"}, path=path, method=method, base64_encoded=False
        )
        if not data:
            event.pop("body")
        if query:
            params = {key: str(value) for key, value in query.items()}
            event["rawQueryString"] = urlencode(params)
            event["queryStringParameters"] = params
        result = api_handler.handler(event, LambdaContext())
        text = result.get("body") or ""
        return Answer(
            result["statusCode"], json.loads(text) if text else None, dict(result.get("headers") or {})
        )

    def get(self, path: str, **query: Any) -> Answer:
        return self.call("GET", path, query=query or None)

    def post(self, path: str, body: Any = None) -> Answer:
        return self.call("POST", path, body)

    def join(self, room: str, identity: str = "alice", **fields: Any) -> Answer:
        return self.post(room_path(room, "join"), {"identity": identity, **fields})

    def table_items(self) -> list[dict[str, Any]]:
        return boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"]

    def tasks(self) -> list[str]:
        ecs = boto3.client("ecs", region_name="us-east-1")
        return ecs.list_tasks(cluster="livekit-agents", startedBy="livekit-agent-lifecycle")["taskArns"]


def human(api: ApiCalls, kind: str, room: str, sid: str, identity: str = "alice") -> None:
    """A human joins or leaves in the fake LiveKit, and LiveKit's webhook says so."""
    livekit = api.aws.livekit
    if kind == "participant_joined":
        livekit.state.add_participant(room, sid, identity)
    else:
        livekit.state.remove_participant(room, sid)
    live = livekit.state.get_room(room)
    assert live is not None
    body = webhook_body(
        kind, room=room, room_sid=live.sid, sid=sid, identity=identity, created_at=int(time.time())
    )
    headers = signed_headers(body, livekit.api_key, livekit.api_secret)
    assert webhook.handler(http_api_event(body, headers), LambdaContext())["statusCode"] == 200


def agent_ready(api: ApiCalls, room: str) -> str:
    task = worker_registers(api.aws, room)
    timer.handler(sqs_event(api.aws.queue_url), LambdaContext())
    return task


def task_status(task_arn: str) -> str:
    [task] = boto3.client("ecs", region_name="us-east-1").describe_tasks(cluster=CLUSTER, tasks=[task_arn])[
        "tasks"
    ]
    return str(task["desiredStatus"])


def room_path(room: str, *rest: str) -> str:
    return "/".join(["/rooms", quote(room, safe=""), *rest])


@pytest.fixture
def api(aws: LocalAws) -> Iterator[ApiCalls]:
    wiring.reset()
    yield ApiCalls(aws)
    wiring.reset()


@pytest.fixture
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(backoff, "sleep", slept.append)
    return slept


@pytest.fixture
def served_api(api: ApiCalls) -> Iterator[LocalHttpApi]:
    """The API over HTTP; it accepts the credentials the default chain finds now (moto's)."""
    credentials = boto3.Session().get_credentials()
    assert credentials is not None
    with LocalHttpApi(api_handler.handler, credentials.get_frozen_credentials(), "us-east-1") as gateway:
        yield gateway
