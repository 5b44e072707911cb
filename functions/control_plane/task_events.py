"""ECS "Task State Change" events for our agent tasks: worker records and crash handling.

EventBridge delivers these at least once and in any order, so the worker record keeps only the
newest ``detail.version``. When a task stops, every room it served is told (idempotently: the
room forgets a task once it has recorded its stop): a stop we did not ask for, while humans
wait, is a crash and goes through the crash-loop accounting; our own StopTask (``UserInitiated``)
and a worker we asked to drain are not crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from control_plane.controller import RoomController
from control_plane.ports import ObservedTaskState, Ports
from control_plane.worker_protocol import LAUNCH_TOKEN_ENV, LAUNCHED_FOR_ROOM_ENV, WorkerRecord

log = logging.getLogger(__name__)

TASK_STATE_CHANGE = "ECS Task State Change"
# The statuses the EventBridge rule delivers (template.yaml filters on ``lastStatus``): STOPPED
# settles the task's rooms; RUNNING records a task whose launch record was lost (a Lambda that
# died after RunTask). The launch itself records the task as PROVISIONING, so the other six
# states a Fargate task passes through would only re-write the record.
RULE_STATUSES = ("RUNNING", "STOPPED")
USER_INITIATED = "UserInitiated"
ESSENTIAL_CONTAINER_EXITED = "EssentialContainerExited"


class _EcsModel(BaseModel):
    """ECS spells fields in camelCase and adds new ones over time: map and ignore them."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class EnvironmentVariable(_EcsModel):
    name: str
    value: str = ""


class ContainerOverride(_EcsModel):
    name: str = ""
    environment: list[EnvironmentVariable] = Field(default_factory=list)


class TaskOverrides(_EcsModel):
    container_overrides: list[ContainerOverride] = Field(default_factory=list)


class ContainerState(_EcsModel):
    name: str = ""
    last_status: str | None = None
    exit_code: int | None = None
    reason: str | None = None


class EcsTaskDetail(_EcsModel):
    task_arn: str
    cluster_arn: str
    last_status: str
    desired_status: str
    version: int
    started_by: str | None = None
    group: str | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    containers: list[ContainerState] = Field(default_factory=list)
    overrides: TaskOverrides = Field(default_factory=TaskOverrides)
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def environment(self, name: str) -> str | None:
        """A container environment override RunTask set (the room and the launch token)."""
        for override in self.overrides.container_overrides:
            for variable in override.environment:
                if variable.name == name:
                    return variable.value
        return None


class EcsTaskStateChange(BaseModel):
    """The EventBridge envelope around an ECS task state change."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    time: datetime | None = None
    detail: EcsTaskDetail


class TaskEventOutcome(StrEnum):
    RECORDED = "recorded"
    STALE = "stale"
    IGNORED = "ignored"


def is_crash(stop_code: str | None, exit_codes: Sequence[int | None], draining: bool) -> bool:
    """Whether a stop we did not request is the agent's failure.

    Not a crash: a StopTask call (ours or an operator's), a worker we asked to drain, or a
    clean exit (every container 0). Anything else is: a non-zero or missing exit code,
    TaskFailedToStart, SpotInterruption, TerminationNotice.
    """
    if stop_code == USER_INITIATED or draining:
        return False
    clean_exit = (
        stop_code == ESSENTIAL_CONTAINER_EXITED and bool(exit_codes) and all(code == 0 for code in exit_codes)
    )
    return not clean_exit


class TaskEventHandler:
    """Handles one event: rooms first (idempotent), then the version-gated worker record, so
    a retry after a partial failure still reaches the rooms."""

    def __init__(self, ports: Ports, controller: RoomController, started_by: str, cluster: str) -> None:
        self._ports = ports
        self._controller = controller
        self._started_by = started_by
        self._cluster = cluster

    def handle(self, event: EcsTaskStateChange) -> TaskEventOutcome:
        detail = event.detail
        if not self._is_ours(event):
            log.info(
                "task event ignored: not one of our agent tasks",
                extra={"task_arn": detail.task_arn, "started_by": detail.started_by},
            )
            return TaskEventOutcome.IGNORED
        worker = self._ports.workers.get_worker(detail.task_arn)
        if detail.last_status == "STOPPED":
            self._task_stopped(detail, worker)
            if self._ports.tasks is not None:
                self._ports.tasks.release([detail.task_arn])  # its place under MAX_TASKS
        recorded = self._ports.workers.record_task_state(
            ObservedTaskState(
                task_arn=detail.task_arn,
                version=detail.version,
                last_status=detail.last_status,
                seen_at=self._ports.clock.now(),
                stop_code=detail.stop_code,
                launched_for=detail.environment(LAUNCHED_FOR_ROOM_ENV),
            )
        )
        if not recorded:
            log.info(
                "older or repeated task event: worker record kept",
                extra={
                    "task_arn": detail.task_arn,
                    "version": detail.version,
                    "last_status": detail.last_status,
                },
            )
            return TaskEventOutcome.STALE
        log.info(
            "task state recorded",
            extra={"task_arn": detail.task_arn, "version": detail.version, "last_status": detail.last_status},
        )
        return TaskEventOutcome.RECORDED

    def _is_ours(self, event: EcsTaskStateChange) -> bool:
        detail = event.detail
        cluster = detail.cluster_arn
        same_cluster = cluster == self._cluster or cluster.endswith(f":cluster/{self._cluster}")
        return (
            event.detail_type == TASK_STATE_CHANGE and detail.started_by == self._started_by and same_cluster
        )

    def _task_stopped(self, detail: EcsTaskDetail, worker: WorkerRecord | None) -> None:
        exit_codes = [container.exit_code for container in detail.containers]
        crashed = is_crash(detail.stop_code, exit_codes, draining=worker is not None and worker.draining)
        rooms = {detail.environment(LAUNCHED_FOR_ROOM_ENV)}
        if worker is not None:
            rooms |= {worker.launched_for, *worker.jobs, *worker.reserved}
        token = detail.environment(LAUNCH_TOKEN_ENV)
        log.info(
            "agent task stopped",
            extra={
                "task_arn": detail.task_arn,
                "stop_code": detail.stop_code,
                "stopped_reason": detail.stopped_reason,
                "exit_codes": exit_codes,
                "crashed": crashed,
            },
        )
        for room in sorted(name for name in rooms if name):
            self._controller.task_stopped(room, detail.task_arn, token, crashed)
