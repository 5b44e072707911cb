"""Provision the control plane's AWS resources in moto and drive its Lambda handlers.

Used by the integration and scenario tests and by ``make demo``: the same table, queue,
cluster, task definition and secret the SAM template creates, and API Gateway / SQS event
shapes exactly as AWS delivers them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from livekit.api import AccessToken

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus
from tests.aws import create_table
from tests.fakes.livekit_server import FakeLiveKitServer

TABLE = "livekit-agent-lifecycle"
CLUSTER = "livekit-agents"
TASK_FAMILY = "livekit-agent-worker"


@dataclass
class LambdaContext:
    function_name: str = "local-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class LocalAws:
    env: dict[str, str]
    queue_url: str
    livekit: FakeLiveKitServer

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")


def provision_ecs(region: str = "us-east-1") -> tuple[str, str]:
    """Cluster and task definition as the template makes them; moto's RunTask wants them real,
    plus a default-VPC subnet and security group, which it returns."""
    ec2 = boto3.client("ec2", region_name=region)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    ecs = boto3.client("ecs", region_name=region)
    ecs.create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(
        family=TASK_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[{"name": "agent", "image": "agent:local", "memory": 2048, "essential": True}],
    )
    return subnet, group


def provision(livekit: FakeLiveKitServer, grace_seconds: int = 60) -> LocalAws:
    """Create the resources (inside moto) and return the functions' environment for them."""
    region = "us-east-1"
    create_table(boto3.client("dynamodb", region_name=region), TABLE)
    sqs = boto3.client("sqs", region_name=region)
    dlq = sqs.create_queue(QueueName="timers-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="timers",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})},
    )["QueueUrl"]
    subnet, group = provision_ecs()
    secret_arn = boto3.client("secretsmanager", region_name=region).create_secret(
        Name="livekit",
        SecretString=json.dumps({"api_key": livekit.api_key, "api_secret": livekit.api_secret}),
    )["ARN"]
    env = {
        "TABLE_NAME": TABLE,
        "TIMER_QUEUE_URL": queue_url,
        "ECS_CLUSTER": CLUSTER,
        "TASK_DEFINITION": TASK_FAMILY,
        "SUBNETS": subnet,
        "SECURITY_GROUPS": group,
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_SECRET_ARN": secret_arn,
        "AGENT_NAME": "voice-agent",
        "GRACE_PERIOD_SECONDS": str(grace_seconds),
        "POWERTOOLS_METRICS_NAMESPACE": "LiveKitAgentLifecycle",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    return LocalAws(env=env, queue_url=queue_url, livekit=livekit)


def worker_registers(aws: LocalAws, room: str = "room-1", task_role_id: str = "") -> str:
    """What the agent container does for the room's task once LiveKit registered its worker:
    write the worker record as ready, then send the ready message. Returns the task ARN."""
    store = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE, task_role_id=task_role_id)
    tracked = store.get(room)
    assert tracked is not None and tracked.agent is not None and tracked.agent.task_arn is not None
    task_arn = tracked.agent.task_arn
    aws.livekit.state.register_worker("voice-agent")
    store.put_worker(
        WorkerRecord(task_arn=task_arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=time.time())
    )
    aws.client("sqs").send_message(
        QueueUrl=aws.queue_url, MessageBody=WorkerReady(task_arn=task_arn, room=room).model_dump_json()
    )
    return task_arn


def signed_headers(
    body: bytes, api_key: str, api_secret: str, ttl: timedelta = timedelta(minutes=5)
) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = AccessToken(api_key, api_secret).with_sha256(digest).with_ttl(ttl).to_jwt()
    return {"authorization": token, "content-type": "application/webhook+json"}


def http_api_event(
    body: bytes,
    headers: dict[str, str],
    path: str = "/livekit/webhook",
    method: str = "POST",
    base64_encoded: bool = True,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; LiveKit's content type arrives base64-encoded."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "local.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "test",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode(),
        "isBase64Encoded": base64_encoded,
    }


def webhook_body(
    kind: str,
    room: str = "room-1",
    room_sid: str = "RM_1",
    sid: str | None = None,
    identity: str = "alice",
    participant_kind: str = "STANDARD",
    event_id: str | None = None,
    created_at: int = 1_800_000_000,
    departure_timeout: int = 120,
) -> bytes:
    """The protojson LiveKit posts: camelCase names, int64 as strings, enums by name."""
    payload: dict[str, Any] = {
        "event": kind,
        "id": event_id or f"EV_{uuid.uuid4().hex[:12]}",
        "createdAt": str(created_at),
        "room": {"sid": room_sid, "name": room, "departureTimeout": departure_timeout, "numParticipants": 1},
    }
    if sid is not None:
        payload["participant"] = {
            "sid": sid,
            "identity": identity,
            "kind": participant_kind,
            "state": "ACTIVE",
        }
    return json.dumps(payload).encode()


def sqs_event(queue_url: str, max_messages: int = 10, sender_id: str | None = None) -> dict[str, Any]:
    """Receive what is visible on the queue now and shape it as the Lambda SQS event
    (``sender_id``: the ``SenderId`` SQS stamps on each, as a task role's would be)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=max_messages).get("Messages", [])
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    **({"SenderId": sender_id} if sender_id else {}),
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:timers",
                "awsRegion": "us-east-1",
            }
            for m in messages
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
    started_by: str = "livekit-agent-lifecycle",
    cluster: str = CLUSTER,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An "ECS Task State Change" event as EventBridge delivers it for a Fargate RunTask task."""
    moment = (at or datetime(2026, 11, 22, tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    region, account = "us-east-1", "123456789012"
    stopped = last_status == "STOPPED"
    environment = [
        {"name": name, "value": value}
        for name, value in (("LAUNCHED_FOR_ROOM", room), ("LAUNCH_TOKEN", launch_token))
        if value is not None
    ]
    container: dict[str, Any] = {
        "containerArn": f"arn:aws:ecs:{region}:{account}:container/{cluster}/{uuid.uuid4()}",
        "lastStatus": last_status if last_status in ("PENDING", "RUNNING", "STOPPED") else "RUNNING",
        "name": "agent",
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
        "overrides": {"containerOverrides": [{"name": "agent", "environment": environment}]},
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


def scheduler_event(scheduled_time: str = "2026-11-22T04:41:00Z") -> dict[str, Any]:
    """The sweep schedule's input: EventBridge Scheduler sends the target's ``Input`` verbatim,
    with its context attributes filled in."""
    return {"scheduled_time": scheduled_time, "execution_id": uuid.uuid4().hex[:16]}
