"""The webhook function's cold path (issue 10): what it imports, what it builds at init, SnapStart.

bench/cold_start.py measures it; these keep the cuts from creeping back: the module imports
neither livekit-api (aiohttp, every Twirp service) nor Powertools' event handler, a join with no
worker ready never builds the LiveKit gateway, and in Lambda, init builds every client (``prime``)
without one call to AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from control_plane import composition
from handlers import webhook
from local.fixtures import LambdaContext, LocalAws, http_api_event, signed_headers, webhook_body

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["livekit.api", "aiohttp", "aws_lambda_powertools.event_handler"]


def fresh_interpreter(code: str, extra_path: Path | None = None, **env_vars: str) -> Any:
    """Run ``code`` in a new Python (nothing imported yet) and return the JSON it prints last."""
    path = [str(ROOT / "functions"), *([str(extra_path)] if extra_path else [])]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        **env_vars,
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def post(aws: LocalAws, body: bytes, **kwargs: Any) -> dict[str, Any]:
    headers = signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)
    return dict(webhook.handler(http_api_event(body, headers, **kwargs), LambdaContext()))


def test_importing_the_handler_loads_no_livekit_api_nor_event_handler() -> None:
    loaded = fresh_interpreter(
        f"import json, sys, handlers.webhook; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert loaded == []


def test_in_lambda_init_builds_the_clients_offline_but_not_livekit_api(aws: LocalAws) -> None:
    code = (
        "import json, sys, handlers.webhook\n"
        "from control_plane import composition as c\n"
        "built = [c.store.cache_info().currsize, c.secrets_provider.cache_info().currsize,"
        " c.ecs_client()._client is not None, c.sqs_client()._client is not None]\n"
        f"print(json.dumps([built, [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    unreachable = "http://127.0.0.1:9"  # init must not call AWS: this endpoint answers nothing
    built, heavy = fresh_interpreter(
        code, LAMBDA_TASK_ROOT=str(ROOT / "functions"), AWS_ENDPOINT_URL=unreachable, **aws.env
    )
    assert built == [1, 1, True, True]
    assert heavy == []


def test_a_join_with_no_worker_ready_never_builds_the_livekit_gateway(aws: LocalAws) -> None:
    response = post(aws, webhook_body("participant_joined", sid="PA_1"))

    assert json.loads(response["body"]) == {"outcome": "applied"}
    assert composition.livekit_gateway.cache_info().currsize == 0
    assert aws.livekit.requests == {}


def test_prime_builds_every_client_without_calling_aws(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_calls(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("prime() must not call AWS: no connection or secret in the snapshot")

    with monkeypatch.context() as patch:
        patch.setattr("botocore.endpoint.Endpoint.make_request", no_calls)
        webhook.prime()

    assert composition.store.cache_info().currsize == 1
    assert composition.secrets_provider.cache_info().currsize == 1
    assert composition.ecs_client()._client is not None
    assert composition.sqs_client()._client is not None
    assert composition.livekit_gateway.cache_info().currsize == 0
    assert post(aws, webhook_body("participant_joined", sid="PA_1"))["statusCode"] == 200


@pytest.mark.parametrize(
    ("method", "path", "stage"),
    [
        ("GET", "/livekit/webhook", "$default"),
        ("POST", "/livekit/other", "$default"),
        ("POST", "/", "$default"),
    ],
)
def test_other_routes_get_the_resolvers_404(method: str, path: str, stage: str) -> None:
    event = http_api_event(b"{}", {}, path=path, method=method)
    event["requestContext"]["stage"] = stage

    response = webhook.handler(event, LambdaContext())

    assert response == {
        "statusCode": 404,
        "body": '{"statusCode":404,"message":"Not found"}',
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


def test_a_named_stage_prefix_is_not_part_of_the_route(aws: LocalAws) -> None:
    body = webhook_body("participant_joined", sid="PA_1")
    event = http_api_event(body, signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret))
    event["rawPath"] = "/live/livekit/webhook"
    event["requestContext"]["stage"] = "live"

    response = webhook.handler(event, LambdaContext())

    assert response["statusCode"] == 200
    assert response["headers"] == {"Content-Type": "application/json"}


def test_a_header_name_in_any_case_carries_the_signature(aws: LocalAws) -> None:
    body = webhook_body("participant_joined", sid="PA_1")
    headers = {
        "Authorization": signed_headers(body, aws.livekit.api_key, aws.livekit.api_secret)["authorization"]
    }

    response = webhook.handler(http_api_event(body, headers), LambdaContext())

    assert response["statusCode"] == 200


def test_snapstart_hooks_are_registered_in_the_lambda_runtime(tmp_path: Path) -> None:
    """The Lambda Python runtime ships ``snapshot_restore_py``; a stand-in records registrations."""
    (tmp_path / "snapshot_restore_py.py").write_text(
        textwrap.dedent(
            """
            before, after = [], []
            def register_before_snapshot(func, *args, **kwargs):
                before.append(func.__name__)
                return func
            def register_after_restore(func, *args, **kwargs):
                after.append(func.__name__)
                return func
            """
        )
    )
    hooks = fresh_interpreter(
        "import json, handlers.webhook, snapshot_restore_py as s; print(json.dumps([s.before, s.after]))",
        extra_path=tmp_path,
    )
    assert hooks == [["before_snapshot"], ["after_restore"]]
