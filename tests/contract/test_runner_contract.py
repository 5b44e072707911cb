"""AgentRunner: the in-memory twin and ECS (moto) agree on launching, listing and stopping tasks,
on launches ECS refused and on launches whose outcome is unknown. The ECS-only tests below
check what the adapter sends against botocore's own model and how it reads every RunTask error."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import regex
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from hypothesis import HealthCheck, example, given, settings
from moto import mock_aws
from moto.moto_api import state_manager

from control_plane.adapters.ecs_runner import EcsRunner, TaskPlacement
from control_plane.adapters.memory.runtime import InMemoryRunner, VirtualClock
from control_plane.aws_names import STOP_REASON_MAX_BYTES
from control_plane.ports import LaunchFailed, LaunchOutcomeUnknown, RunnerUnavailable
from control_plane.settings import TASK_STARTED_BY
from local.fixtures import CLUSTER, TASK_FAMILY, CallCounter, provision_ecs
from tests.aws_models import (
    ECS,
    NASTY_ROOM_NAMES,
    RUN_TASK,
    TAG_VALUE,
    TAG_VALUE_PATTERN,
    documented,
    is_valid_sqs_body,
    livekit_room_names,
)

REGION = "us-east-1"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/0123456789abcdef0123456789abcdef"
RUN_TASK_ERRORS = sorted(shape.name for shape in ECS.operation_model("RunTask").error_shapes)
# After these ECS may have started the task; after every other modelled error it surely did not.
UNKNOWN_OUTCOME_ERRORS = {"ServerException", "ConflictException"}


@dataclass
class Runner:
    port: InMemoryRunner | EcsRunner
    describe_calls: Callable[[], int]
    throttle: Callable[[], None]
    lose_next_launch_reply: Callable[[], None]
    refuse_next_launch: Callable[[], None]
    conflict_next_launch: Callable[[str], None]


def ecs_placement() -> tuple[Any, TaskPlacement]:
    """The cluster, task definition and network RunTask needs (moto wants them real)."""
    subnet, group = provision_ecs(REGION)
    placement = TaskPlacement(
        cluster=CLUSTER,
        task_definition=TASK_FAMILY,
        container_name="agent",
        subnets=[subnet],
        security_groups=[group],
        capacity_provider="FARGATE",
        assign_public_ip=False,
        started_by=TASK_STARTED_BY,
    )
    return boto3.client("ecs", region_name=REGION), placement


def _throttled(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
    return AWSResponse("https://ecs", 400, {}, None), error  # type: ignore[arg-type]


def _error(code: str, message: str = "", status: int = 400, **fields: Any) -> dict[str, Any]:
    """A parsed error reply as botocore builds it (modelled fields beside ``Error``)."""
    return {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **fields,
    }


def _reply(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    status = parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
    return AWSResponse("https://ecs", status, {}, None), parsed  # type: ignore[arg-type]


def answer_next_run_task(client: Any, parsed: dict[str, Any]) -> None:
    """The next RunTask gets this reply instead of reaching moto."""
    pending = [parsed]

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        return _reply(pending.pop()) if pending else None

    client.meta.events.register("before-call.ecs.RunTask", answer)


def lose_next_run_task_reply(client: Any) -> None:
    """The next RunTask reaches moto, which starts the task, but its reply is lost."""
    pending = [ReadTimeoutError(endpoint_url="https://ecs.us-east-1.amazonaws.com")]

    def lose(**_: Any) -> None:
        if pending:
            raise pending.pop()

    client.meta.events.register("after-call.ecs.RunTask", lose)


@contextmanager
def moto_ecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TaskPlacement]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        # moto moves a task one state on at every DescribeTasks unless told otherwise.
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        try:
            yield ecs_placement()
        finally:
            state_manager.unset_transition("ecs::task")


@pytest.fixture(params=["twin", "ecs"])
def runner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runner]:
    if request.param == "twin":
        twin = InMemoryRunner(VirtualClock())

        def lose_reply() -> None:
            twin.lose_next_launch_replies += 1

        def refuse() -> None:
            twin.fail_next_launches += 1

        yield Runner(
            twin,
            lambda: twin.calls["DescribeTasks"],
            lambda: setattr(twin, "listing_fails", True),
            lose_reply,
            refuse,
            lambda _: None,  # the twin answers a reused token with its task, as ECS's conflict does
        )
        return
    with moto_ecs(monkeypatch) as (client, placement):
        counter = CallCounter(client)

        def throttle() -> None:
            client.meta.events.register("before-call.ecs.ListTasks", _throttled)

        def refuse() -> None:
            answer_next_run_task(client, _error("InvalidParameterException", "bad tag value"))

        def conflict(task_arn: str) -> None:
            reused = _error("ConflictException", "clientToken reused", resourceIds=[task_arn])
            answer_next_run_task(client, reused)

        yield Runner(
            EcsRunner(client, placement),
            lambda: counter.calls.get("DescribeTasks", 0),
            throttle,
            lambda: lose_next_run_task_reply(client),
            refuse,
            conflict,
        )


@dataclass
class StubbedEcs:
    """The adapter on a client whose calls never leave: RunTask answers with ``replies`` in
    order (a reply dict or an exception to raise), then with a started task; every call's
    parameters are kept in ``sent`` by operation."""

    port: EcsRunner
    replies: list[dict[str, Any] | Exception] = field(default_factory=list)
    sent: defaultdict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent[model.name].append(dict(params))

    def answer(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if model.name == "RunTask" and self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return _reply(reply)
        if model.name == "RunTask":
            return _reply({"tasks": [{"taskArn": TASK_ARN}], "failures": []})
        return _reply({})


@pytest.fixture
def ecs() -> StubbedEcs:
    client = boto3.client(
        "ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    placement = TaskPlacement(
        cluster=CLUSTER,
        task_definition=TASK_FAMILY,
        container_name="agent",
        subnets=["subnet-0123456789abcdef0"],
        security_groups=["sg-0123456789abcdef0"],
        capacity_provider="FARGATE",
        assign_public_ip=False,
        started_by=TASK_STARTED_BY,
    )
    stubbed = StubbedEcs(EcsRunner(client, placement))
    client.meta.events.register("before-parameter-build.ecs.*", stubbed.record)
    client.meta.events.register("before-call.ecs.*", stubbed.answer)
    return stubbed


def test_launched_task_is_listed_with_its_room_and_token(runner: Runner) -> None:
    (launched,) = runner.port.launch("room-1", "token-1")

    [task] = runner.port.list_tasks()

    assert task.task_arn == launched.task_arn
    assert (task.room, task.launch_token, task.desired_status) == ("room-1", "token-1", "RUNNING")
    assert runner.port.find_launched("token-1") == launched.task_arn
    assert runner.port.find_launched("token-2") is None


def test_stopped_task_leaves_the_listing_but_can_still_be_described(runner: Runner) -> None:
    (kept,) = runner.port.launch("room-1", "token-1")
    (stopped,) = runner.port.launch("room-2", "token-2")

    runner.port.stop(stopped.task_arn, "room closed")
    runner.port.stop(stopped.task_arn, "again")  # already stopped: not an error

    assert [t.task_arn for t in runner.port.list_tasks()] == [kept.task_arn]
    [described] = runner.port.describe_tasks([stopped.task_arn])
    assert (described.last_status, described.desired_status) == ("STOPPED", "STOPPED")
    assert runner.port.find_launched("token-2") is None


def test_describing_a_task_ecs_no_longer_knows_leaves_it_out(runner: Runner) -> None:
    (known,) = runner.port.launch("room-1", "token-1")
    gone = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/0123456789abcdef0123456789abcdef"

    described = runner.port.describe_tasks([known.task_arn, gone])

    assert [t.task_arn for t in described] == [known.task_arn]


def test_more_than_a_hundred_tasks_are_described_in_chunks(runner: Runner) -> None:
    launched = {runner.port.launch(f"room-{n}", f"token-{n}")[0].task_arn for n in range(101)}
    before = runner.describe_calls()

    listed = runner.port.list_tasks()

    assert {t.task_arn for t in listed} == launched
    assert runner.describe_calls() - before == 2, "DescribeTasks takes at most 100 tasks"


def test_a_throttled_listing_is_reported_as_unavailable(runner: Runner) -> None:
    runner.port.launch("room-1", "token-1")
    runner.throttle()

    with pytest.raises(RunnerUnavailable):
        runner.port.list_tasks()


def test_any_room_name_launches_and_is_described_as_itself(runner: Runner, subtests: pytest.Subtests) -> None:
    for number, name in enumerate(NASTY_ROOM_NAMES):
        with subtests.test(name=name):
            (launched,) = runner.port.launch(name, f"token-{number}")

            [task] = runner.port.describe_tasks([launched.task_arn])

            assert (task.room, task.launch_token) == (name, f"token-{number}")
            runner.port.stop(launched.task_arn, f"room {name} closed")
            assert runner.port.find_launched(f"token-{number}") is None


def test_a_launch_whose_reply_was_lost_is_found_by_its_token(runner: Runner) -> None:
    runner.lose_next_launch_reply()

    with pytest.raises(LaunchOutcomeUnknown):
        runner.port.launch("room-1", "token-1")

    found = runner.port.find_launched("token-1")
    [task] = runner.port.list_tasks()
    assert found == task.task_arn
    assert (task.room, task.launch_token) == ("room-1", "token-1")


def test_a_refused_launch_starts_nothing(runner: Runner) -> None:
    runner.refuse_next_launch()

    with pytest.raises(LaunchFailed):
        runner.port.launch("room-1", "token-1")

    assert runner.port.find_launched("token-1") is None
    assert runner.port.list_tasks() == []


def test_a_reused_token_with_other_parameters_returns_the_task_it_started(runner: Runner) -> None:
    (first,) = runner.port.launch("room-1", "token-1")
    runner.conflict_next_launch(first.task_arn)

    (again,) = runner.port.launch("room-1 renamed", "token-1")

    assert again.task_arn == first.task_arn
    assert [t.task_arn for t in runner.port.list_tasks()] == [first.task_arn]


# --- ECS only: what the adapter sends, and how it reads RunTask's errors ------------------


def with_nasty_names(test: Callable[..., None]) -> Callable[..., None]:
    for name in NASTY_ROOM_NAMES:
        test = example(name=name)(test)
    return test


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=livekit_room_names)
@with_nasty_names
def test_run_task_for_any_livekit_room_name_meets_botocores_model(ecs: StubbedEcs, name: str) -> None:
    tag_key = ECS.shape_for("TagKey")
    overrides_documentation = RUN_TASK["overrides"].documentation
    overrides_limit = int(documented(r"A total of (\d+) characters are allowed", overrides_documentation)[1])
    token_documentation = RUN_TASK["clientToken"].documentation
    token_limit = int(documented(r"Up to (\d+) characters are allowed", token_documentation)[1])

    ecs.port.launch(name, "0123456789abcdef0123456789abcdef01234567-1")

    params = ecs.sent["RunTask"][-1]
    for tag in params["tags"]:
        assert regex.fullmatch(tag_key.metadata["pattern"], tag["key"])
        assert TAG_VALUE_PATTERN.fullmatch(tag["value"])
        assert len(tag["value"].encode()) <= TAG_VALUE.metadata["max"]
        assert not tag["value"][:4].casefold().startswith("aws:")
    assert len(params["clientToken"]) <= token_limit
    assert params["startedBy"] == TASK_STARTED_BY
    assert len(json.dumps(params["overrides"])) <= overrides_limit  # botocore's own JSON encoding


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=livekit_room_names)
@with_nasty_names
def test_a_stop_reason_naming_any_room_is_sent_bounded(ecs: StubbedEcs, name: str) -> None:
    ecs.port.stop(TASK_ARN, f"room {name} closed")

    reason = ecs.sent["StopTask"][-1]["reason"]
    assert len(reason.encode("utf-8")) <= STOP_REASON_MAX_BYTES
    assert is_valid_sqs_body(reason)  # the XML character set every AWS API accepts


@pytest.mark.parametrize("code", RUN_TASK_ERRORS)
def test_every_run_task_error_in_botocores_model_is_a_refusal_or_an_unknown_outcome(
    ecs: StubbedEcs, code: str
) -> None:
    ecs.replies.append(_error(code, "no task named here"))
    expected = LaunchOutcomeUnknown if code in UNKNOWN_OUTCOME_ERRORS else LaunchFailed

    with pytest.raises(expected, match=code):
        ecs.port.launch("room-1", "token-1")


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503)]
)
def test_throttling_and_unmodelled_errors_leave_the_outcome_unknown(
    ecs: StubbedEcs, code: str, status: int
) -> None:
    ecs.replies.append(_error(code, "after botocore's retries", status))

    with pytest.raises(LaunchOutcomeUnknown, match=code):
        ecs.port.launch("room-1", "token-1")


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="https://ecs.us-east-1.amazonaws.com"),
        ConnectionClosedError(endpoint_url="https://ecs.us-east-1.amazonaws.com"),
        EndpointConnectionError(endpoint_url="https://ecs.us-east-1.amazonaws.com"),
    ],
)
def test_connection_errors_leave_the_outcome_unknown(ecs: StubbedEcs, error: BotoCoreError) -> None:
    ecs.replies.append(error)

    with pytest.raises(LaunchOutcomeUnknown):
        ecs.port.launch("room-1", "token-1")


def test_a_request_botocore_refuses_to_send_is_a_refusal(ecs: StubbedEcs) -> None:
    ecs.replies.append(ParamValidationError(report="Invalid type for parameter count"))

    with pytest.raises(LaunchFailed):
        ecs.port.launch("room-1", "token-1")


def test_a_conflict_naming_the_task_only_in_its_message_returns_that_task(ecs: StubbedEcs) -> None:
    other = TASK_ARN.replace("0123", "4567")
    ecs.replies.append(_error("ConflictException", f"The clientToken is already used by {other}."))

    assert ecs.port.launch("room-1", "token-1")[0].task_arn == other


def test_a_reply_with_failures_and_no_task_is_a_refusal(ecs: StubbedEcs) -> None:
    ecs.replies.append({"tasks": [], "failures": [{"reason": "RESOURCE:FARGATE"}]})

    with pytest.raises(LaunchFailed, match="RESOURCE:FARGATE"):
        ecs.port.launch("room-1", "token-1")
