"""The template through the real SAM transform (offline), and the result through cfn-lint.

cfn-lint 1.x lints SAM templates against SAM's schema without expanding them, so the
resources SAM generates (the HTTP API routes, the schedule, the rule, the event source mapping)
are only checked here. Needs ``aws-sam-translator``, so it runs in the infra venv
(``make infra-lint``, infra/requirements-infra.txt) and is skipped in the project venv.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.infra import cfn

samtranslator = pytest.importorskip("samtranslator", reason="aws-sam-translator is not installed")


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def transformed(monkeypatch_module: pytest.MonkeyPatch) -> dict[str, Any]:
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(cfn.TEMPLATE_PATH.read_text())
    # sam build/package replace CodeUri with an S3 location; the transform insists on one.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/functions.zip"
    output: dict[str, Any] = transform(copy.deepcopy(template), {}, _NoManagedPolicies())
    return output


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_transformed_template_passes_cfn_lint(transformed: dict[str, Any]) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(transformed), config=ManualArgs(regions=["us-east-1"]))
    assert [str(match) for match in matches] == []


def test_generated_resources_are_the_expected_ones(transformed: dict[str, Any]) -> None:
    resources = transformed["Resources"]
    route_auth = {
        (method.upper(), path): operation.get("security")
        for path, methods in resources["HttpApi"]["Properties"]["Body"]["paths"].items()
        for method, operation in methods.items()
    }
    assert route_auth.pop(("POST", "/livekit/webhook")) == [{"NONE": []}], "signed by LiveKit"
    assert ("POST", "/rooms/{room}/join") in route_auth, "the API's routes are generated"
    assert all(auth == [{"AWS_IAM": []}] for auth in route_auth.values()), route_auth
    schedule = resources["SweeperFunctionEveryMinute"]["Properties"]
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Name"] == {"Fn::Sub": "${AWS::StackName}-sweep"}
    assert resources["TaskEventsFunctionEcsTaskStateChange"]["Type"] == "AWS::Events::Rule"
    mapping = resources["TimerFunctionTimers"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The functions keep their own roles: SAM adds neither roles nor policies for them.
    for role in ("WebhookRole", "TimerRole", "SweeperRole", "TaskEventsRole", "ApiRole"):
        assert resources[role]["Properties"] == json.loads(json.dumps(cfn.resource(role)["Properties"]))
    assert not [name for name in resources if name.endswith("FunctionRole")]
