"""SnapStart and memory sizes in the template (issue 22): on by one parameter for the functions a
human waits on, with the alias SnapStart needs, and off for the others (docs/cold-start.md)."""

from __future__ import annotations

import pytest

from tests.infra import cfn

SNAPSTART = ["WebhookFunction", "ApiFunction", "TimerFunction"]
NO_SNAPSTART = ["SweeperFunction", "TaskEventsFunction"]


def _apply_on(function: str, snapstart: str) -> str:
    """``ApplyOn`` as CloudFormation resolves it for this value of the parameter."""
    [(intrinsic, (condition, when_true, when_false))] = cfn.resource(function)["Properties"]["SnapStart"][
        "ApplyOn"
    ].items()
    assert intrinsic == "Fn::If"
    [(equals, (left, right))] = cfn.template()["Conditions"][condition].items()
    assert equals == "Fn::Equals"
    holds = cfn.evaluate(left, {"LambdaSnapStart": snapstart}) == right
    return str(when_true if holds else when_false)


def test_the_parameter_is_on_by_default_and_takes_true_or_false() -> None:
    parameter = cfn.template()["Parameters"]["LambdaSnapStart"]
    assert parameter["Default"] == "true"
    assert parameter["AllowedValues"] == ["true", "false"]


@pytest.mark.parametrize("function", SNAPSTART)
def test_human_facing_functions_snapshot_published_versions_behind_an_alias(function: str) -> None:
    properties = cfn.resource(function)["Properties"]
    assert properties["AutoPublishAlias"] == "live"  # SnapStart applies to published versions only
    assert _apply_on(function, "true") == "PublishedVersions"
    assert _apply_on(function, "false") == "None"


@pytest.mark.parametrize("function", NO_SNAPSTART)
def test_background_functions_have_no_snapstart(function: str) -> None:
    assert "SnapStart" not in cfn.resource(function)["Properties"]


def test_memory_sizes_leave_room_over_the_measured_peak() -> None:
    for name, function in cfn.functions().items():
        assert function.properties["MemorySize"] >= 512, name
