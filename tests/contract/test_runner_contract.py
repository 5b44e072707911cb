"""AgentRunner: the in-memory twin and ECS (moto) agree on launching, listing and stopping tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.moto_api import state_manager

from control_plane.adapters.ecs_runner import EcsRunner, TaskPlacement
from control_plane.adapters.memory.runtime import InMemoryRunner, VirtualClock
from control_plane.ports import RunnerUnavailable
from control_plane.settings import TASK_STARTED_BY
from tests.aws import CallCounter
from tests.localstack import CLUSTER, TASK_FAMILY, provision_ecs

REGION = "us-east-1"


@dataclass
class Runner:
    port: InMemoryRunner | EcsRunner
    describe_calls: Callable[[], int]
    throttle: Callable[[], None]


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


@pytest.fixture(params=["twin", "ecs"])
def runner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runner]:
    if request.param == "twin":
        twin = InMemoryRunner(VirtualClock())
        yield Runner(twin, lambda: twin.calls["DescribeTasks"], lambda: setattr(twin, "listing_fails", True))
        return
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        # moto moves a task one state on at every DescribeTasks unless told otherwise.
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        try:
            client, placement = ecs_placement()
            counter = CallCounter(client)

            def throttle() -> None:
                client.meta.events.register("before-call.ecs.ListTasks", _throttled)

            yield Runner(
                EcsRunner(client, placement), lambda: counter.calls.get("DescribeTasks", 0), throttle
            )
        finally:
            state_manager.unset_transition("ecs::task")


def test_launched_task_is_listed_with_its_room_and_token(runner: Runner) -> None:
    launched = runner.port.launch("room-1", "token-1")

    [task] = runner.port.list_tasks()

    assert task.task_arn == launched.task_arn
    assert (task.room, task.launch_token, task.desired_status) == ("room-1", "token-1", "RUNNING")
    assert runner.port.find_launched("token-1") == launched.task_arn
    assert runner.port.find_launched("token-2") is None


def test_stopped_task_leaves_the_listing_but_can_still_be_described(runner: Runner) -> None:
    kept = runner.port.launch("room-1", "token-1")
    stopped = runner.port.launch("room-2", "token-2")

    runner.port.stop(stopped.task_arn, "room closed")
    runner.port.stop(stopped.task_arn, "again")  # already stopped: not an error

    assert [t.task_arn for t in runner.port.list_tasks()] == [kept.task_arn]
    [described] = runner.port.describe_tasks([stopped.task_arn])
    assert (described.last_status, described.desired_status) == ("STOPPED", "STOPPED")
    assert runner.port.find_launched("token-2") is None


def test_describing_a_task_ecs_no_longer_knows_leaves_it_out(runner: Runner) -> None:
    known = runner.port.launch("room-1", "token-1")
    gone = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/0123456789abcdef0123456789abcdef"

    described = runner.port.describe_tasks([known.task_arn, gone])

    assert [t.task_arn for t in described] == [known.task_arn]


def test_more_than_a_hundred_tasks_are_described_in_chunks(runner: Runner) -> None:
    launched = {runner.port.launch(f"room-{n}", f"token-{n}").task_arn for n in range(101)}
    before = runner.describe_calls()

    listed = runner.port.list_tasks()

    assert {t.task_arn for t in listed} == launched
    assert runner.describe_calls() - before == 2, "DescribeTasks takes at most 100 tasks"


def test_a_throttled_listing_is_reported_as_unavailable(runner: Runner) -> None:
    runner.port.launch("room-1", "token-1")
    runner.throttle()

    with pytest.raises(RunnerUnavailable):
        runner.port.list_tasks()
