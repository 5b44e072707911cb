"""The control plane's Lambdas invoked the way AWS invokes them, for the reliability tests.

:func:`invoke` is one picklable entry point for every handler, so the "containers" of
``tests/integration/test_concurrency.py::invoke_all_at_once`` can run a mix of webhooks, timer
messages and sweeps in one burst (:func:`at_once`). A handler that raises is answered as AWS
would: API Gateway turns a webhook Lambda's error into a 500 (which LiveKit retries), so the
burst goes on.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from typing import Any
from unittest import mock

from control_plane import composition
from control_plane.ports import LiveRoom
from control_plane.worker_protocol import TimerMessage
from local.fixtures import LambdaContext, LocalAws, http_api_event, signed_headers, webhook_body
from tests.integration import test_concurrency

Job = dict[str, Any]
SERVER_ERROR = 500
# What a Lambda container has imported once its init phase is over.
HANDLER_MODULES = ["handlers.webhook", "handlers.timer", "handlers.sweeper", "livekit.api", __name__]
_containers = multiprocessing.get_context("forkserver")
_containers.set_forkserver_preload(HANDLER_MODULES)


def at_once(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Every job in its own process, all released together: ``invoke_all_at_once``.

    Its processes are forked from a fork server that imported the handlers once (a container
    after its init phase), not spawned to import them each: 50 cold imports cost ~50 s of CPU
    on two cores. Forking from that server is safe where forking this process is not (the
    fake LiveKit's thread may hold a lock here). Each job carries this process's environment,
    which the fork server does not follow.
    """
    environment = dict(os.environ)
    with mock.patch.object(test_concurrency, "_spawn", _containers):
        return test_concurrency.invoke_all_at_once(invoke, [{**job, "env": environment} for job in jobs])


def invoke(job: Job, context: Any) -> dict[str, Any]:
    """Run ``handlers.<job["handler"]>.handler`` on ``job["event"]``; a raised error is returned."""
    if "env" in job and job["env"] != dict(os.environ):
        os.environ.clear()
        os.environ.update(job["env"])
        composition.reset()
    handler = importlib.import_module(f"handlers.{job['handler']}").handler
    try:
        return dict(handler(job["event"], context))
    except Exception as error:
        return {"statusCode": SERVER_ERROR, "error": f"{type(error).__name__}: {error}"}


def livekit_body(
    kind: str,
    live: LiveRoom,
    sid: str | None = None,
    identity: str = "alice",
    event_id: str | None = None,
) -> bytes:
    """What LiveKit posts now for session ``live``: its sid and creation time (s and ms) included."""
    payload = json.loads(
        webhook_body(
            kind,
            room=live.name,
            room_sid=live.sid,
            sid=sid,
            identity=identity,
            event_id=event_id,
            created_at=int(time.time()),
        )
    )
    payload["room"] |= {
        "creationTime": str(int(live.created_at)),
        "creationTimeMs": str(int(live.created_at * 1000)),
    }
    return json.dumps(payload).encode()


def webhook_job(aws: LocalAws, body: bytes, headers: dict[str, str] | None = None) -> Job:
    headers = headers or signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    return {"handler": "webhook", "event": http_api_event(body, headers)}


def timer_job(message: TimerMessage, message_id: str) -> Job:
    """One SQS record holding ``message``, as the event source mapping hands it to the Lambda."""
    record = {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}",
        "body": message.model_dump_json(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:timers",
        "awsRegion": "us-east-1",
    }
    return {"handler": "timer", "event": {"Records": [record]}}


def sweeper_job() -> Job:
    return {
        "handler": "sweeper",
        "event": {"scheduled_time": "2026-11-22T04:41:00Z", "execution_id": "burst"},
    }


def status(response: dict[str, Any]) -> int:
    return int(response.get("statusCode", 0))


def outcome(response: dict[str, Any]) -> str:
    if "error" in response:
        return "error"
    body = json.loads(response.get("body") or "{}")
    return str(body.get("outcome") or body.get("error") or "")


def retry_server_errors(jobs: Sequence[Job], responses: list[dict[str, Any]], attempts: int = 3) -> int:
    """LiveKit retries a webhook answered 5xx (and SQS a failed message): again, one at a time,
    until it succeeds; returns how many deliveries that took. ``responses`` is updated in place."""
    retried = 0
    for index, job in enumerate(jobs):
        for _ in range(attempts):
            response = responses[index]
            failed = status(response) >= SERVER_ERROR or response.get("batchItemFailures")
            if job["handler"] == "sweeper" or not failed:
                break
            responses[index] = invoke(job, LambdaContext())
            retried += 1
    return retried
