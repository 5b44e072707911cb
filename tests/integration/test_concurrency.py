"""Many Lambdas at once against a moto server in another process: still one agent per room.

Each concurrent invocation runs in its own freshly started process, as each Lambda container
is its own process (and a cold one imports the handler anew): Powertools keeps the current
event in module state, exactly like Lambda does, so threads of one process would not model
separate containers. ("spawn", not "fork": forking a process that runs the fake LiveKit's
thread can copy a held lock into the child.) A barrier releases all of them at once.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import boto3

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus
from handlers import timer, webhook
from local.fixtures import TABLE, LambdaContext, LocalAws, http_api_event, signed_headers, webhook_body

HUMANS = 20
_spawn = multiprocessing.get_context("spawn")
BARRIER_TIMEOUT_SECONDS = 120
_barrier: Any = None


def _start_together(barrier: Any) -> None:
    global _barrier  # noqa: PLW0603 - per-process state handed over by the pool initializer
    _barrier = barrier


def _invoke(job: tuple[Callable[[dict[str, Any], Any], dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    handler, event = job
    _barrier.wait(timeout=BARRIER_TIMEOUT_SECONDS)
    return handler(event, LambdaContext())


def invoke_all_at_once(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]], events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    barrier = _spawn.Barrier(len(events))
    with _spawn.Pool(len(events), initializer=_start_together, initargs=(barrier,)) as pool:
        return pool.map(_invoke, [(handler, event) for event in events], chunksize=1)


def sqs_records(body: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "Records": [
                {
                    "messageId": f"m-{i}",
                    "receiptHandle": f"r-{i}",
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:timers",
                    "awsRegion": "us-east-1",
                }
            ]
        }
        for i in range(count)
    ]


def test_twenty_simultaneous_joins_start_one_task_and_one_dispatch(server_aws: LocalAws) -> None:
    aws = server_aws
    aws.livekit.state.open_room("room-1")
    key, secret = aws.livekit.api_key, aws.livekit.api_secret
    bodies = [webhook_body("participant_joined", sid=f"PA_{i}", identity=f"human-{i}") for i in range(HUMANS)]

    responses = invoke_all_at_once(
        webhook.handler, [http_api_event(b, signed_headers(b, key, secret)) for b in bodies]
    )

    assert [r["statusCode"] for r in responses] == [200] * HUMANS
    [task_arn] = aws.client("ecs").list_tasks(cluster="livekit-agents", startedBy="livekit-agent-lifecycle")[
        "taskArns"
    ]
    store = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
    room = store.get("room-1")
    assert len(room.humans) == HUMANS
    assert room.agent.task_arn == task_arn

    aws.livekit.state.register_worker("voice-agent")
    store.put_worker(
        WorkerRecord(task_arn=task_arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=time.time())
    )
    ready = WorkerReady(task_arn=task_arn, room="room-1").model_dump_json()

    results = invoke_all_at_once(timer.handler, sqs_records(ready, 5))

    assert results == [{"batchItemFailures": []}] * 5
    assert len(aws.livekit.state.list_dispatches("room-1")) == 1
    assert aws.livekit.requests["CreateDispatch"] == 1
    assert store.get("room-1").state.value == "active"
