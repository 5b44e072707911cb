"""ECS Fargate adapter: one agent worker task per launch token.

``RunTask`` gets the launch token as ``clientToken`` (ECS returns the same task for a
repeated token within 24 h), our ``startedBy`` marker (the only filter ``ListTasks`` needs
to find our tasks) and tags naming the room (encoded: tag values refuse most punctuation,
see ``aws_names``) and token. ``failures[]`` is checked: RunTask can answer 200 with no task.

A failed RunTask is either a refusal (ECS surely started nothing: ``LaunchFailed``) or of
unknown outcome (a 5xx, a throttle or a timeout after botocore's retries, any of which may
follow an attempt that did start the task: ``LaunchOutcomeUnknown``, so the caller keeps the
token and looks it up before launching again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from control_plane.aws_names import STOP_REASON_MAX_BYTES, bounded_text, decode_room_tag, encode_room_tag
from control_plane.ports import (
    LaunchedTask,
    LaunchFailed,
    LaunchOutcomeUnknown,
    RunnerUnavailable,
    TaskSnapshot,
)
from control_plane.worker_protocol import LAUNCH_TOKEN_ENV, LAUNCHED_FOR_ROOM_ENV

if TYPE_CHECKING:
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_ecs.type_defs import KeyValuePairTypeDef, RunTaskResponseTypeDef, TagTypeDef, TaskTypeDef

ROOM_TAG = "livekit-room"
TOKEN_TAG = "launch-token"
_RETRYABLE = ("ThrottlingException", "ServerException", "LimitExceededException")
# RunTask errors after which ECS surely started nothing: the request, the caller or the
# cluster was refused. Every other error (ServerException, ThrottlingException, unmodelled
# codes) leaves the outcome unknown.
REFUSED_LAUNCH_CODES = frozenset(
    {
        "InvalidParameterException",
        "ClientException",
        "AccessDeniedException",
        "PlatformUnknownException",
        "PlatformTaskDefinitionIncompatibilityException",
        "ClusterNotFoundException",
        "UnsupportedFeatureException",
        "BlockedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
    }
)
CONFLICT_CODE = "ConflictException"
_TASK_ARN = re.compile(r"arn:aws[\w-]*:ecs:[\w-]+:\d{12}:task/[\w/-]+")
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

    def launch(self, room: str | None, launch_token: str, count: int = 1) -> list[LaunchedTask]:
        try:
            response = self._run_task(room, launch_token, count)
        except ClientError as error:
            existing = _task_named_by_conflict(error)
            if existing is None:
                raise _launch_error(error) from error
            return [LaunchedTask(task_arn=existing, launch_token=launch_token)]
        except ParamValidationError as error:  # botocore refused it before sending anything
            raise LaunchFailed(f"RunTask not sent: {error}") from error
        except BotoCoreError as error:
            raise LaunchOutcomeUnknown(f"RunTask {type(error).__name__}: {error}") from error
        tasks = response.get("tasks", [])
        if tasks:
            return [LaunchedTask(task_arn=task["taskArn"], launch_token=launch_token) for task in tasks]
        failures = response.get("failures", [])
        reasons = ", ".join(f"{f.get('reason', '?')} {f.get('detail', '')}".strip() for f in failures)
        raise LaunchFailed(f"RunTask returned no task: {reasons or 'no reason given'}")

    def _run_task(self, room: str | None, launch_token: str, count: int) -> RunTaskResponseTypeDef:
        """A room's launch names the room (env and tag); a pool launch names none."""
        p = self._placement
        environment: list[KeyValuePairTypeDef] = [{"name": LAUNCH_TOKEN_ENV, "value": launch_token}]
        tags: list[TagTypeDef] = [{"key": TOKEN_TAG, "value": launch_token}]
        if room is not None:
            environment.insert(0, {"name": LAUNCHED_FOR_ROOM_ENV, "value": room})
            tags.insert(0, {"key": ROOM_TAG, "value": encode_room_tag(room)})
        return self._client.run_task(
            cluster=p.cluster,
            taskDefinition=p.task_definition,
            count=count,
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
            overrides={"containerOverrides": [{"name": p.container_name, "environment": environment}]},
            tags=tags,
            enableECSManagedTags=True,
        )

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
            self._client.stop_task(
                cluster=self._placement.cluster,
                task=task_arn,
                reason=bounded_text(reason, STOP_REASON_MAX_BYTES),
            )
        except ClientError as error:
            if _error_code(error) in _RETRYABLE:
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
        room=_room(task, tags.get(ROOM_TAG)),
        stop_code=task.get("stopCode"),
        exit_codes=tuple(container.get("exitCode") for container in task.get("containers", [])),
    )


def _task_named_by_conflict(error: ClientError) -> str | None:
    """The task a reused ``clientToken`` already started: a ConflictException (same token,
    other parameters) names it in ``resourceIds``, or failing that in its message."""
    if _error_code(error) != CONFLICT_CODE:
        return None
    fields: Mapping[str, object] = error.response  # botocore puts modelled fields beside "Error"
    listed = fields.get("resourceIds")
    named = [*(listed if isinstance(listed, list) else []), *_TASK_ARN.findall(str(error))]
    return str(named[0]) if named else None


def _launch_error(error: ClientError) -> LaunchFailed | LaunchOutcomeUnknown:
    code = _error_code(error)
    if code in REFUSED_LAUNCH_CODES:
        return LaunchFailed(f"RunTask {code}: {error}")
    return LaunchOutcomeUnknown(f"RunTask {code or 'error'}: {error}")


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _room(task: TaskTypeDef, tag: str | None) -> str | None:
    """The room from its tag; from the launch's environment override when the tag is hashed."""
    decoded = decode_room_tag(tag) if tag is not None else None
    if decoded is not None:
        return decoded
    for container in task.get("overrides", {}).get("containerOverrides", []):
        for variable in container.get("environment", []):
            if variable.get("name") == LAUNCHED_FOR_ROOM_ENV:
                return variable.get("value")
    return None


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None
