"""``make demo``: one room session through the real Lambda handlers, entirely on this machine.

AWS is moto (in-process), LiveKit is the local fake Twirp server; webhooks are signed the
way LiveKit signs them and go through the webhook handler as API Gateway events, timer
messages go through the timer handler as SQS batches. The grace period is shortened to a
few seconds so the whole story fits in half a minute of real time (SQS delays are real).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
GRACE_SECONDS = 4
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from control_plane import composition  # noqa: E402
from control_plane.adapters.dynamodb_store import DynamoDBStore  # noqa: E402
from handlers import timer, webhook  # noqa: E402
from tests.fakes.livekit_server import FakeLiveKitServer  # noqa: E402
from tests.localstack import (  # noqa: E402
    TABLE,
    LambdaContext,
    LocalAws,
    http_api_event,
    provision,
    signed_headers,
    sqs_event,
    webhook_body,
    worker_registers,
)

ROOM = "demo-room"
STARTED = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f}s] {line}", flush=True)


def quietly(call: Any, *args: Any) -> Any:
    """Run a handler without its EMF metric lines cluttering the timeline."""
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args)


class Demo:
    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self.store = DynamoDBStore(boto3.client("dynamodb"), TABLE)

    def webhook(
        self, kind: str, sid: str | None = None, identity: str = "", event_id: str | None = None
    ) -> None:
        body = webhook_body(
            kind,
            room=ROOM,
            room_sid="RM_demo",
            sid=sid,
            identity=identity,
            created_at=int(time.time()),
            event_id=event_id,
        )
        headers = signed_headers(body, self.aws.livekit.api_key, self.aws.livekit.api_secret)
        response = quietly(webhook.handler, http_api_event(body, headers), LambdaContext())
        outcome = json.loads(response["body"]).get("outcome", response["body"])
        who = f" {identity} ({sid})" if sid else ""
        say(f"LiveKit → webhook {kind}{who}: HTTP {response['statusCode']} {outcome}")
        self.show()

    def timers(self) -> None:
        batch = sqs_event(self.aws.queue_url)
        for record in batch["Records"]:
            say(f"SQS → timer {json.loads(record['body'])['kind']}")
        if batch["Records"]:
            quietly(timer.handler, batch, LambdaContext())
            self.show()

    def worker_ready(self) -> None:
        arn = worker_registers(self.aws, ROOM)
        say(f"Fargate task {arn.rsplit('/', 1)[-1][:8]}… registered with LiveKit and sent worker_ready")
        self.timers()

    def show(self) -> None:
        room = self.store.get(ROOM)
        tasks = boto3.client("ecs").list_tasks(cluster="livekit-agents", startedBy="livekit-agent-lifecycle")
        running = boto3.client("ecs").describe_tasks(
            cluster="livekit-agents", tasks=tasks["taskArns"] or ["none"]
        )
        live = [t for t in running.get("tasks", []) if t.get("desiredStatus") != "STOPPED"]
        dispatches = self.aws.livekit.state.list_dispatches(ROOM)
        state = room.state.value if room else "-"
        humans = ", ".join(h.identity for h in room.humans.values()) if room else ""
        grace = ""
        if room and room.grace:
            grace = f", grace ends in {room.grace.deadline - time.time():.0f}s"
        say(
            f"    room {state}: humans [{humans}]{grace}; "
            f"tasks running {len(live)}; dispatches {len(dispatches)}"
        )

    def wait(self, seconds: float) -> None:
        say(f"… {seconds:.0f}s pass")
        time.sleep(seconds)
        self.timers()


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with FakeLiveKitServer() as livekit, mock_aws():
        aws = provision(livekit, grace_seconds=GRACE_SECONDS)
        os.environ.update(aws.env)
        composition.reset()
        livekit.state.open_room(ROOM, departure_timeout=GRACE_SECONDS + 10)
        say(f"Local stack up: moto (DynamoDB, SQS, ECS, Secrets Manager), fake LiveKit at {livekit.url}")
        say(f"Grace period {GRACE_SECONDS}s (60s by default)")
        demo = Demo(aws)
        demo.webhook("room_started")
        demo.webhook("participant_joined", "PA_alice1", "alice")
        demo.worker_ready()
        say("alice refreshes her page: new sid joins, old sid leaves")
        demo.webhook("participant_joined", "PA_alice2", "alice")
        demo.webhook("participant_left", "PA_alice1", "alice")
        say("bob joins; LiveKit delivers that webhook twice")
        demo.webhook("participant_joined", "PA_bob", "bob", event_id="EV_bob_joined")
        demo.webhook("participant_joined", "PA_bob", "bob", event_id="EV_bob_joined")
        demo.webhook("participant_left", "PA_bob", "bob")
        demo.webhook("participant_left", "PA_alice2", "alice")
        demo.wait(GRACE_SECONDS / 2)
        say("alice comes back within the grace period")
        demo.webhook("participant_joined", "PA_alice3", "alice")
        say("the first grace timer fires later: it is stale and changes nothing")
        demo.wait(GRACE_SECONDS / 2 + 1)
        demo.webhook("participant_left", "PA_alice3", "alice")
        demo.wait(GRACE_SECONDS + 1.5)
        say("Grace over: dispatch deleted, task stopped, room closed (kept as history with a TTL)")
        composition.reset()


if __name__ == "__main__":
    main()
