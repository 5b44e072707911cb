"""What the tests and the benchmarks both build on: the control plane's AWS resources in moto
and its Lambda handlers' events, and webhooks and policies as the core's tests use them.

The same table, queue, cluster, task definition and secret the SAM template creates (tests/infra
checks they agree), the event shapes AWS delivers (the Lambda context, API Gateway and ECS events
are the local stack's own, ``local.stack.events``, re-exported here), and a webhook builder with
the policies the tests and ``bench/`` run the core with. Here, not in ``tests/``, because nothing
outside ``tests/`` imports from ``tests/``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
from livekit.api import AccessToken

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.events import EventParticipant, EventRoom, LiveKitEvent
from control_plane.reconcile import Policy
from control_plane.sweeper import SweepPolicy
from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus
from local.livekit_sim import FakeLiveKitServer
from local.stack.events import (  # noqa: F401  (re-exported for the tests)
    CLUSTER,
    TASK_FAMILY,
    LambdaContext,
    ecs_task_state_change,
    http_api_event,
)

TABLE = "livekit-agent-lifecycle"

TABLE_KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}]
TABLE_ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "attention", "AttributeType": "S"},
    {"AttributeName": "slot_key", "AttributeType": "S"},
    {"AttributeName": "slot_free", "AttributeType": "N"},
]
ATTENTION_INDEX = {
    "IndexName": "attention-index",
    "KeySchema": [
        {"AttributeName": "attention", "KeyType": "HASH"},
        {"AttributeName": "pk", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}
SLOT_INDEX = {
    "IndexName": "slot-index",
    "KeySchema": [
        {"AttributeName": "slot_key", "KeyType": "HASH"},
        {"AttributeName": "slot_free", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}


def create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=TABLE_KEY_SCHEMA,
        AttributeDefinitions=TABLE_ATTRIBUTES,
        GlobalSecondaryIndexes=[ATTENTION_INDEX, SLOT_INDEX],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


class CallCounter:
    """Counts AWS API calls a boto3 client makes, by operation name."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, int] = {}
        client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def reset(self) -> None:
        self.calls.clear()


AGENT_NAME = "voice-agent"
STANDARD, SIP, EGRESS, AGENT = 0, 3, 2, 4

POLICY = Policy(
    grace_seconds=60,
    agent_name=AGENT_NAME,
    claim_lease_seconds=30,
    history_ttl_seconds=7 * 24 * 3600,
    worker_stale_seconds=45,
)

SWEEP_POLICY = SweepPolicy(
    agent_name=AGENT_NAME,
    grace_seconds=60,
    agent_ttl_seconds=300,
    settle_seconds=30,
    worker_stale_seconds=45,
    worker_start_timeout_seconds=300,
    max_agent_age_seconds=4 * 3600,
    concurrency=4,
    safety_margin_seconds=10,
)

# The departure_timeout of the rooms the tests' webhooks report (and their LiveKit twin opens).
EVENT_DEPARTURE_TIMEOUT = 120


_ids = itertools.count(1)


def event(
    kind: str,
    room: str = "room-1",
    room_sid: str = "RM_1",
    sid: str | None = None,
    identity: str = "alice",
    participant_kind: int = STANDARD,
    at: float = 0,
    event_id: str | None = None,
    departure_timeout: int = EVENT_DEPARTURE_TIMEOUT,
    room_created_at: float = 0.0,
) -> LiveKitEvent:
    participant = None
    if sid is not None:
        participant = EventParticipant(sid=sid, identity=identity, kind=participant_kind)
    return LiveKitEvent(
        id=event_id or f"EV_{next(_ids)}",
        event=kind,
        created_at=int(at),
        room=EventRoom(
            sid=room_sid,
            name=room,
            departure_timeout=departure_timeout,
            created_at=room_created_at,
        ),
        participant=participant,
    )


@dataclass
class LocalAws:
    env: dict[str, str]
    queue_url: str
    livekit: FakeLiveKitServer

    def client(self, service: str) -> Any:
        """A client for any service a test names (boto3's overloads want a literal name)."""
        return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]


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
        WorkerRecord(
            task_arn=task_arn,
            status=WorkerStatus.READY,
            capacity=1,
            heartbeat_at=time.time(),
            launched_for=room,
        )
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


def scheduler_event(scheduled_time: str = "2026-11-22T04:41:00Z") -> dict[str, Any]:
    """The sweep schedule's input: EventBridge Scheduler sends the target's ``Input`` verbatim,
    with its context attributes filled in."""
    return {"scheduled_time": scheduled_time, "execution_id": uuid.uuid4().hex[:16]}
