"""infra/smoke_test.py offline: its webhooks verify like LiveKit's, and a run against the real
webhook handler (moto + the fake LiveKit) passes, while a broken deployment fails it."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from control_plane.events import EventType, WebhookRejected, verify_webhook
from handlers import webhook
from local.fixtures import TABLE, LambdaContext, LocalAws, http_api_event
from tests.infra.cfn import ROOT

URL = "https://api.example/livekit/webhook"


def _load_smoke() -> ModuleType:
    path = ROOT / "infra" / "smoke_test.py"
    spec = importlib.util.spec_from_file_location("infra_smoke_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke()


def test_signed_webhooks_verify_as_livekit_webhooks() -> None:
    body = smoke.webhook_body("room_started", "room-a", "RM_a", now=1_800_000_000)
    headers = smoke.signed_headers(body, "APIkey", "a-secret-long-enough-for-hs256-0123456789")

    event = verify_webhook(
        body, headers["Authorization"], "APIkey", "a-secret-long-enough-for-hs256-0123456789"
    )

    assert event.type is EventType.ROOM_STARTED
    assert event.room is not None and (event.room.name, event.room.sid) == ("room-a", "RM_a")
    assert headers["Content-Type"] == "application/webhook+json"
    assert not headers["Authorization"].startswith("Bearer"), "LiveKit sends the bare JWT"
    with pytest.raises(WebhookRejected):
        verify_webhook(
            body + b" ", headers["Authorization"], "APIkey", "a-secret-long-enough-for-hs256-0123456789"
        )


def test_participant_webhooks_carry_a_human() -> None:
    human = {"sid": "PA_1", "identity": "smoke-human", "kind": "STANDARD", "state": "ACTIVE"}
    body = smoke.webhook_body("participant_joined", "room-a", "RM_a", now=1, participant=human)
    headers = smoke.signed_headers(body, "k", "s" * 32)
    event = verify_webhook(body, headers["Authorization"], "k", "s" * 32)
    change = event.participant_change()
    assert change is not None and change.sid == "PA_1"


class Deployed:
    """The stack in-process: the smoke test's POSTs go through API Gateway's event shape."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Mapping[str, str]]] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        self.requests.append((url, headers))
        event = http_api_event(body, {name.lower(): value for name, value in headers.items()})
        response = webhook.handler(event, LambdaContext())
        return int(response["statusCode"]), str(response.get("body", "")).encode()


def _smoke(aws: LocalAws, transport: Any, lines: list[str], **kwargs: Any) -> Any:
    target = smoke.Target(URL, TABLE, None)
    return smoke.Smoke(
        target,
        aws.livekit.api_key,
        aws.livekit.api_secret,
        boto3.client("dynamodb"),
        post=transport,
        sleep=lambda _: None,
        say=lines.append,
        **kwargs,
    )


@pytest.mark.parametrize("launch", [False, True], ids=["records", "launches"])
def test_a_smoke_run_against_the_real_handler_passes(aws: LocalAws, launch: bool) -> None:
    deployed, lines = Deployed(), []

    _smoke(aws, deployed.post, lines).run("smoke-1", launch=launch)

    assert all(url == URL for url, _ in deployed.requests)
    assert "Authorization" not in deployed.requests[0][1], "the first request is the unsigned one"
    assert any("closed" in line for line in lines)
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#smoke-1"}})["Item"]
    assert item["state"]["S"] == "closed"
    tasks = boto3.client("ecs").list_tasks(cluster="livekit-agents", desiredStatus="STOPPED")["taskArns"]
    assert len(tasks) == (1 if launch else 0), "a launched task is stopped again"


def test_a_deployment_with_the_wrong_secret_fails_the_smoke_run(aws: LocalAws) -> None:
    smoke_run = _smoke(aws, Deployed().post, [])
    smoke_run.api_secret = "not-the-secret-the-stack-has-0123456789"
    with pytest.raises(smoke.SmokeFailure, match="expected HTTP 200, got 401"):
        smoke_run.run("smoke-2")


def test_a_webhook_that_writes_nothing_fails_the_smoke_run(aws: LocalAws) -> None:
    def accepts_but_drops(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return (200, b"{}") if "Authorization" in headers else (401, b"{}")

    now = iter(range(0, 10_000, 10))
    smoke_run = _smoke(aws, accepts_but_drops, [], wait_seconds=30, clock=lambda: float(next(now)))
    with pytest.raises(smoke.SmokeFailure, match="ROOM#smoke-3 recorded: not seen"):
        smoke_run.run("smoke-3")


def test_stack_outputs_and_parameters_name_the_target() -> None:
    class CloudFormation:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803  (boto3's name)
            assert StackName == "lk-dev"
            return {
                "Stacks": [
                    {
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "WebhookUrl", "OutputValue": URL},
                            {"OutputKey": "TableName", "OutputValue": "lk-dev-Table-1"},
                        ],
                        "Parameters": [{"ParameterKey": "LiveKitSecretArn", "ParameterValue": "arn:secret"}],
                    }
                ]
            }

    assert smoke.stack_target(CloudFormation(), "lk-dev") == smoke.Target(URL, "lk-dev-Table-1", "arn:secret")


def test_credentials_come_from_the_environment_or_the_secret() -> None:
    class Secrets:
        def get_secret_value(self, SecretId: str) -> dict[str, str]:  # noqa: N803
            return {"SecretString": json.dumps({"api_key": "k", "api_secret": "s"})}

    assert smoke.livekit_credentials(
        Secrets(), None, {"LIVEKIT_API_KEY": "a", "LIVEKIT_API_SECRET": "b"}
    ) == ("a", "b")
    assert smoke.livekit_credentials(Secrets(), "arn:secret", {}) == ("k", "s")
    with pytest.raises(smoke.SmokeFailure):
        smoke.livekit_credentials(Secrets(), None, {})


def test_the_command_line_needs_a_stack_or_an_endpoint() -> None:
    with pytest.raises(SystemExit) as exit_:
        smoke.main([], env={})
    assert exit_.value.code == 2


def test_the_image_script_is_valid_bash() -> None:
    import subprocess

    script = Path(ROOT / "infra" / "build_and_push_image.sh")
    assert script.stat().st_mode & 0o111, "executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "set -euo pipefail" in script.read_text()
