"""ECS Fargate adapter: one agent worker task per launch token.

``RunTask`` gets the launch token as ``clientToken`` (ECS returns the same task for a
repeated token within 24 h), our ``startedBy`` marker (the only filter ``ListTasks`` needs
to find our tasks) and tags naming the room and token. ``failures[]`` is checked: RunTask can
answer 200 with no task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from control_plane.ports import LaunchedTask, LaunchFailed, RunnerUnavailable, TaskSnapshot
from control_plane.worker_protocol import LAUNCH_TOKEN_ENV, LAUNCHED_FOR_ROOM_ENV

if TYPE_CHECKING:
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_ecs.type_defs import TaskTypeDef

ROOM_TAG = "livekit-room"
TOKEN_TAG = "launch-token"
_RETRYABLE = ("ThrottlingException", "ServerException", "LimitExceededException")
DESCRIBE_CHUNK = 100


@dataclass(frozen=True)
class TaskPlacement:
    cluster: str
    task_definition: str
    container_name: str
    subnets: list[str]
    security_groups: list[str]
    capacity_provider: str
    assign_public_ip: bool
    started_by: str


class EcsRunner:
    def __init__(self, client: ECSClient, placement: TaskPlacement) -> None:
        self._client = client
        self._placement = placement

    def launch(self, room: str, launch_token: str) -> LaunchedTask:
        p = self._placement
        try:
            response = self._client.run_task(
                cluster=p.cluster,
                taskDefinition=p.task_definition,
                count=1,
                clientToken=launch_token,
                startedBy=p.started_by,
                capacityProviderStrategy=[{"capacityProvider": p.capacity_provider, "weight": 1}],
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": p.subnets,
                        "securityGroups": p.security_groups,
                        "assignPublicIp": "ENABLED" if p.assign_public_ip else "DISABLED",
                    }
                },
                overrides={
                    "containerOverrides": [
                        {
                            "name": p.container_name,
                            "environment": [
                                {"name": LAUNCHED_FOR_ROOM_ENV, "value": room},
                                {"name": LAUNCH_TOKEN_ENV, "value": launch_token},
                            ],
                        }
                    ]
                },
                tags=[{"key": ROOM_TAG, "value": room[:256]}, {"key": TOKEN_TAG, "value": launch_token}],
                enableECSManagedTags=True,
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise LaunchFailed(f"RunTask {code}: {error}") from error
        failures = response.get("failures", [])
        tasks = response.get("tasks", [])
        if failures or not tasks:
            reasons = ", ".join(f"{f.get('reason', '?')} {f.get('detail', '')}".strip() for f in failures)
            raise LaunchFailed(f"RunTask returned no task: {reasons or 'no reason given'}")
        return LaunchedTask(task_arn=tasks[0]["taskArn"], launch_token=launch_token)

    def find_launched(self, launch_token: str) -> str | None:
        """The running task for a launch token, when a crashed launcher never recorded it."""
        for task in self.list_tasks():
            if task.launch_token == launch_token:
                return task.task_arn
        return None

    def list_tasks(self) -> list[TaskSnapshot]:
        """Our tasks meant to run: ``startedBy`` is the only filter ListTasks allows with it."""
        try:
            arns = [
                arn
                for page in self._client.get_paginator("list_tasks").paginate(
                    cluster=self._placement.cluster, startedBy=self._placement.started_by
                )
                for arn in page.get("taskArns", [])
            ]
        except (ClientError, BotoCoreError) as error:
            raise RunnerUnavailable(f"ListTasks failed: {error}") from error
        return [task for task in self.describe_tasks(arns) if task.desired_status == "RUNNING"]

    def describe_tasks(self, task_arns: Sequence[str]) -> list[TaskSnapshot]:
        snapshots: list[TaskSnapshot] = []
        for start in range(0, len(task_arns), DESCRIBE_CHUNK):
            try:
                response = self._client.describe_tasks(
                    cluster=self._placement.cluster,
                    tasks=list(task_arns[start : start + DESCRIBE_CHUNK]),
                    include=["TAGS"],
                )
            except (ClientError, BotoCoreError) as error:
                raise RunnerUnavailable(f"DescribeTasks failed: {error}") from error
            snapshots += [_snapshot(task) for task in response.get("tasks", [])]
        return snapshots

    def stop(self, task_arn: str, reason: str) -> None:
        try:
            self._client.stop_task(cluster=self._placement.cluster, task=task_arn, reason=reason[:255])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE:
                raise
            # InvalidParameterException: the task is unknown or already stopped. Both mean done.


def _snapshot(task: TaskTypeDef) -> TaskSnapshot:
    tags = {tag.get("key"): tag.get("value") for tag in task.get("tags", [])}
    return TaskSnapshot(
        task_arn=task["taskArn"],
        last_status=task.get("lastStatus", ""),
        desired_status=task.get("desiredStatus", ""),
        created_at=_epoch(task.get("createdAt")),
        started_at=_epoch(task.get("startedAt")),
        launch_token=tags.get(TOKEN_TAG),
        room=tags.get(ROOM_TAG),
        stop_code=task.get("stopCode"),
        exit_codes=tuple(container.get("exitCode") for container in task.get("containers", [])),
    )


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None
