"""The shapes AWS hands the functions: API Gateway HTTP API (payload 2.0), SQS batches from an event
source mapping, EventBridge "ECS Task State Change" events, and the Lambda context.

The local stack builds every invocation with these, and the tests build theirs with the same
functions, so both drive the handlers with what AWS actually delivers.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from control_plane.settings import TASK_STARTED_BY
from control_plane.worker_protocol import LAUNCH_TOKEN_ENV, LAUNCHED_FOR_ROOM_ENV

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "livekit-agents"
TASK_FAMILY = "livekit-agent-worker"
CONTAINER = "agent"
# API Gateway HTTP APIs pass these bodies as text and base64-encode every other content type
# (LiveKit's ``application/webhook+json`` included).
TEXT_CONTENT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


@dataclass
class LambdaContext:
    """What a handler may ask of its invocation: the time left of ``timeout_seconds``."""

    function_name: str = "local-function"
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:local-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this content type as text (else base64)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind.startswith(TEXT_CONTENT_TYPES)


def http_api_event(
    body: bytes,
    headers: Mapping[str, str],
    path: str = "/livekit/webhook",
    method: str = "POST",
    base64_encoded: bool = True,
    *,
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    query_string: str = "",
    query: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event. ``route_key`` is the matched route
    (``POST /rooms/{room}/join``); without one, the request's own method and path."""
    key = route_key or f"{method} {path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": key,
        "rawPath": path,
        "rawQueryString": query_string,
        "headers": dict(headers),
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", f"local.execute-api.{REGION}.amazonaws.com"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", "local"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": key,
            "stage": "$default",
            "time": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode("utf-8", "replace"),
        "isBase64Encoded": base64_encoded,
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if query:
        event["queryStringParameters"] = dict(query)
    return event


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str = REGION) -> dict[str, Any]:
    """The Lambda SQS event for messages as ``ReceiveMessage`` returned them (attributes
    requested with ``All``: ``SenderId``, ``ApproximateReceiveCount``, …)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": dict(message.get("MessageAttributes", {})),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def ecs_task_state_change(
    task_arn: str,
    last_status: str,
    version: int,
    *,
    room: str | None = None,
    launch_token: str | None = None,
    desired_status: str | None = None,
    stop_code: str | None = None,
    stopped_reason: str | None = None,
    exit_code: int | None = None,
    started_by: str = TASK_STARTED_BY,
    cluster: str = CLUSTER,
    at: datetime | None = None,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """An "ECS Task State Change" event as EventBridge delivers it for a Fargate RunTask task."""
    moment = (at or datetime(2026, 11, 22, tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stopped = last_status == "STOPPED"
    environment = [
        {"name": name, "value": value}
        for name, value in ((LAUNCHED_FOR_ROOM_ENV, room), (LAUNCH_TOKEN_ENV, launch_token))
        if value is not None
    ]
    container: dict[str, Any] = {
        "containerArn": f"arn:aws:ecs:{region}:{account}:container/{cluster}/{uuid.uuid4()}",
        "lastStatus": last_status if last_status in ("PENDING", "RUNNING", "STOPPED") else "RUNNING",
        "name": CONTAINER,
        "image": "agent:local",
        "taskArn": task_arn,
        "networkInterfaces": [],
        "cpu": "0",
    }
    detail: dict[str, Any] = {
        "attachments": [],
        "availabilityZone": f"{region}a",
        "capacityProviderName": "FARGATE",
        "clusterArn": f"arn:aws:ecs:{region}:{account}:cluster/{cluster}",
        "connectivity": "CONNECTED",
        "containers": [container],
        "cpu": "1024",
        "memory": "2048",
        "createdAt": moment,
        "desiredStatus": desired_status or ("STOPPED" if stopped else "RUNNING"),
        "enableExecuteCommand": False,
        "group": f"family:{TASK_FAMILY}",
        "lastStatus": last_status,
        "overrides": {"containerOverrides": [{"name": CONTAINER, "environment": environment}]},
        "platformVersion": "1.4.0",
        "startedBy": started_by,
        "taskArn": task_arn,
        "taskDefinitionArn": f"arn:aws:ecs:{region}:{account}:task-definition/{TASK_FAMILY}:1",
        "updatedAt": moment,
        "version": version,
    }
    if last_status != "PENDING":
        detail["startedAt"] = moment
    if stopped:
        detail |= {"stoppedReason": stopped_reason or "", "stoppingAt": moment, "stoppedAt": moment}
        if stop_code is not None:
            detail["stopCode"] = stop_code
        if exit_code is not None:
            container["exitCode"] = exit_code
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": account,
        "time": moment,
        "region": region,
        "resources": [task_arn],
        "detail": detail,
    }


def schedule_event(now: datetime | None = None) -> dict[str, Any]:
    """The sweep schedule's input, as EventBridge Scheduler fills in its context attributes."""
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"scheduled_time": moment, "execution_id": uuid.uuid4().hex[:16]}
