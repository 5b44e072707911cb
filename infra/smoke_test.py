#!/usr/bin/env python3
"""Post-deploy smoke test: signed LiveKit webhooks in, the room's record read back out.

    .venv/bin/python infra/smoke_test.py --stack livekit-agents-dev [--region us-east-1]

Steps (each printed; exit status 1 at the first that fails):
1. find the webhook URL, table and LiveKit secret from the stack's outputs and parameters
   (or take them from --webhook-url / --table / --secret-arn);
2. read the LiveKit API key and secret (LIVEKIT_API_KEY / LIVEKIT_API_SECRET, else the secret);
3. an unsigned webhook must get 401 and write nothing;
4. a signed ``room_started`` for a fresh room ``smoke-<time>`` must get 200, and ``ROOM#<room>``
   must appear in the table with that room sid;
5. with --launch: a human joins, the record must show a launched agent task (a real Fargate
   task: this checks RunTask, PassRole, the task definition and subnets), then leaves;
6. a signed ``room_finished`` must get 200 and close the record (a launched task is stopped).

Needs boto3 and livekit-api (``pip install -r functions/requirements.txt``) and AWS credentials
allowed to describe the stack, read the secret and read the table.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from livekit.api import AccessToken

CONTENT_TYPE = "application/webhook+json"
Transport = Callable[[str, bytes, Mapping[str, str]], tuple[int, bytes]]
"""(url, body, headers) -> (status, response body)."""


class SmokeFailure(Exception):
    pass


# --- requests ---------------------------------------------------------------------------------


def webhook_body(
    event: str,
    room: str,
    room_sid: str,
    *,
    now: int,
    participant: Mapping[str, str] | None = None,
    departure_timeout: int = 600,
) -> bytes:
    """A webhook as LiveKit posts it: protojson, camelCase, int64 as strings, enums by name."""
    payload: dict[str, Any] = {
        "event": event,
        "id": f"EV_smoke_{uuid.uuid4().hex[:16]}",
        "createdAt": str(now),
        "room": {
            "sid": room_sid,
            "name": room,
            "departureTimeout": departure_timeout,
            "creationTime": str(now),
        },
    }
    if participant is not None:
        payload["participant"] = dict(participant)
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(
    body: bytes, api_key: str, api_secret: str, ttl: timedelta = timedelta(minutes=5)
) -> dict[str, str]:
    """LiveKit's signature: a JWT (no "Bearer") whose ``sha256`` claim is base64(sha256(body))."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = AccessToken(api_key, api_secret).with_sha256(digest).with_ttl(ttl).to_jwt()
    return {"Authorization": token, "Content-Type": CONTENT_TYPE}


def http_post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --- the stack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    webhook_url: str
    table: str
    secret_arn: str | None


def stack_target(cloudformation: Any, stack: str) -> Target:
    [description] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in description.get("Parameters", [])}
    missing = {"WebhookUrl", "TableName"} - set(outputs)
    if missing:
        raise SmokeFailure(
            f"stack {stack} has no outputs {sorted(missing)} (status {description['StackStatus']})"
        )
    return Target(outputs["WebhookUrl"], outputs["TableName"], parameters.get("LiveKitSecretArn"))


def livekit_credentials(secrets: Any, secret_arn: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    if env.get("LIVEKIT_API_KEY") and env.get("LIVEKIT_API_SECRET"):
        return env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"]
    if not secret_arn:
        raise SmokeFailure("no LiveKit credentials: set LIVEKIT_API_KEY/LIVEKIT_API_SECRET or --secret-arn")
    value = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    if not value.get("api_key") or not value.get("api_secret"):
        raise SmokeFailure(f"secret {secret_arn} must be JSON with api_key and api_secret")
    return str(value["api_key"]), str(value["api_secret"])


def read_room(dynamodb: Any, table: str, room: str) -> dict[str, Any] | None:
    from boto3.dynamodb.types import TypeDeserializer

    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "ROOM#" + room}}, ConsistentRead=True).get(
        "Item"
    )
    if item is None:
        return None
    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) for key, value in item.items()}


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Smoke:
    target: Target
    api_key: str
    api_secret: str
    dynamodb: Any
    post: Transport = http_post
    wait_seconds: float = 30.0
    poll_seconds: float = 1.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = print

    def send(self, body: bytes, *, signed: bool = True) -> tuple[int, dict[str, Any]]:
        headers = (
            signed_headers(body, self.api_key, self.api_secret) if signed else {"Content-Type": CONTENT_TYPE}
        )
        status, raw = self.post(self.target.webhook_url, body, headers)
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {"raw": raw.decode(errors="replace")}
        return status, answer if isinstance(answer, dict) else {"answer": answer}

    def expect(self, what: str, body: bytes, status: int, *, signed: bool = True) -> dict[str, Any]:
        got, answer = self.send(body, signed=signed)
        if got != status:
            raise SmokeFailure(f"{what}: expected HTTP {status}, got {got} {answer}")
        self.say(f"ok   {what}: HTTP {got} {answer}")
        return answer

    def wait_for(self, what: str, room: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = self.clock() + self.wait_seconds
        while True:
            record = read_room(self.dynamodb, self.target.table, room)
            if record is not None and ready(record):
                self.say(f"ok   {what}: state={record.get('state')} version={record.get('version')}")
                return record
            if self.clock() >= deadline:
                shown = {k: record.get(k) for k in ("state", "sid", "version", "agent")} if record else None
                raise SmokeFailure(f"{what}: not seen within {self.wait_seconds:.0f}s; record: {shown}")
            self.sleep(self.poll_seconds)

    def run(self, room: str, *, launch: bool = False) -> None:
        room_sid = f"RM_smoke_{uuid.uuid4().hex[:12]}"
        now = int(self.clock())
        self.say(f"room {room} ({room_sid}) via {self.target.webhook_url}")

        self.expect(
            "unsigned webhook is refused",
            webhook_body("room_started", room, room_sid, now=now),
            401,
            signed=False,
        )
        if read_room(self.dynamodb, self.target.table, room) is not None:
            raise SmokeFailure(f"unsigned webhook wrote ROOM#{room}")

        self.expect(
            "signed room_started is accepted", webhook_body("room_started", room, room_sid, now=now), 200
        )
        self.wait_for(f"ROOM#{room} recorded", room, lambda r: r.get("sid") == room_sid)

        if launch:
            human = {
                "sid": "PA_smoke_human",
                "identity": "smoke-human",
                "kind": "STANDARD",
                "state": "ACTIVE",
            }
            body = webhook_body("participant_joined", room, room_sid, now=now + 1, participant=human)
            self.expect("a human joins", body, 200)
            record = self.wait_for(
                "agent task launched", room, lambda r: bool((r.get("agent") or {}).get("task_arn"))
            )
            self.say(f"     task {record['agent']['task_arn']}")
            body = webhook_body("participant_left", room, room_sid, now=now + 2, participant=human)
            self.expect("the human leaves", body, 200)

        self.expect(
            "signed room_finished is accepted",
            webhook_body("room_finished", room, room_sid, now=now + 3),
            200,
        )
        self.wait_for(
            f"ROOM#{room} closed", room, lambda r: r.get("state") == "closed" and not r.get("agent")
        )


def main(argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack", help="CloudFormation stack name (reads WebhookUrl, TableName, LiveKitSecretArn)"
    )
    parser.add_argument("--region", default=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--webhook-url", help="instead of --stack")
    parser.add_argument("--table", help="instead of --stack")
    parser.add_argument("--secret-arn", help="LiveKit secret (default: the stack's LiveKitSecretArn)")
    parser.add_argument(
        "--room", default=f"smoke-{int(time.time())}", help="room name (default smoke-<time>)"
    )
    parser.add_argument("--launch", action="store_true", help="also launch (and stop) a real agent task")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for each record change")
    args = parser.parse_args(argv)
    if not args.stack and not (args.webhook_url and args.table):
        parser.error("give --stack, or --webhook-url and --table")

    import boto3

    session = boto3.session.Session(region_name=args.region)
    try:
        if args.stack:
            found = stack_target(session.client("cloudformation"), args.stack)
            target = Target(
                args.webhook_url or found.webhook_url,
                args.table or found.table,
                args.secret_arn or found.secret_arn,
            )
        else:
            target = Target(args.webhook_url, args.table, args.secret_arn)
        key, secret = livekit_credentials(session.client("secretsmanager"), target.secret_arn, env)
        wait = args.wait * 4 if args.launch else args.wait
        Smoke(target, key, secret, session.client("dynamodb"), wait_seconds=wait).run(
            args.room, launch=args.launch
        )
    except SmokeFailure as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
