"""The IAM actions the code needs, declared once per adapter and held to the code and the template.

``tests/infra/test_permissions.py`` checks this map three ways, so neither side can drift:

1. against the code: each adapter's boto3 calls, read from its source (every call on a
   client it was given) and recorded on moto while it runs, are exactly its declared API
   actions; every client the Lambda code creates is for a service declared here;
2. against composition: :data:`FUNCTION_ADAPTERS` lists what each handler's code path builds;
3. against ``template.yaml``: each function's role grants exactly :func:`function_actions`
   (plus what Lambda needs to run it), and the agent task role exactly :data:`WORKER_ACTIONS`.

Add a boto3 call without declaring it here, or declare it without granting it, and the infra
tests fail. Nothing imports this at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

ADAPTER_ACTIONS: Final[Mapping[str, frozenset[str]]] = {
    # control_plane.adapters.dynamodb_store.DynamoDBStore: rooms, webhook ids, worker records.
    "DynamoDBStore": frozenset(
        {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        }
    ),
    # control_plane.adapters.ecs_runner.EcsRunner: agent worker tasks.
    "EcsRunner": frozenset({"ecs:RunTask", "ecs:ListTasks", "ecs:DescribeTasks", "ecs:StopTask"}),
    # control_plane.adapters.sqs_timers.SqsTimers: grace timers and respawns.
    "SqsTimers": frozenset({"sqs:SendMessage"}),
    # control_plane.composition.secrets_provider: a Powertools SecretsProvider (GetSecretValue).
    "secrets_provider": frozenset({"secretsmanager:GetSecretValue"}),
    # handlers.timer.SqsVisibility: hands timer messages it has no time left for back at once.
    "SqsVisibility": frozenset({"sqs:ChangeMessageVisibility"}),
    # control_plane.adapters.sqs_sweep_groups.SqsSweepGroups: the sweep's fan-out, a message a group.
    "SqsSweepGroups": frozenset({"sqs:SendMessage"}),
    # api.room_index.RoomIndex: one page of the attention index for GET /rooms.
    # control_plane.adapters.dynamodb_launch_limiter: the shared launch-rate bucket item.
    "DynamoDBLaunchLimiter": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    # control_plane.adapters.dynamodb_task_count: the live-task count behind MAX_TASKS.
    "DynamoDBTaskCount": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    "RoomIndex": frozenset({"dynamodb:Query"}),
    # api.counters.CloudWatchCounters: the last hour of the functions' own metrics for GET /stats.
    "CloudWatchCounters": frozenset({"cloudwatch:GetMetricData", "cloudwatch:ListMetrics"}),
}
"""API actions each adapter calls, as ``service:Operation``."""

IMPLIED_ACTIONS: Final[Mapping[str, Mapping[str, str]]] = {
    "ecs:RunTask": {
        "ecs:TagResource": "RunTask passes tags, and ECS authorizes tagging on create separately",
        "iam:PassRole": "RunTask hands the task definition's task and execution roles to ECS",
    },
}
"""Actions an API call needs beyond its own, with the reason: no call of their own shows them."""

COMPOSITION_ADAPTERS: Final[tuple[str, ...]] = (
    "DynamoDBStore",
    "DynamoDBLaunchLimiter",
    "DynamoDBTaskCount",
    "EcsRunner",
    "SqsTimers",
    "secrets_provider",
)
"""What ``composition.ports`` builds. It builds all of them for any handler, so every handler
that goes through ``composition.controller`` can reach every action."""

FUNCTION_ADAPTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "webhook": COMPOSITION_ADAPTERS,
    "timer": (*COMPOSITION_ADAPTERS, "SqsVisibility"),
    # The sweep fans out over its own queue (control_plane/sweeper/wiring.py).
    "sweeper": (*COMPOSITION_ADAPTERS, "SqsSweepGroups"),
    "task_events": COMPOSITION_ADAPTERS,
    # The API reconciles and sweeps through composition, and builds two readers of its own
    # (api/wiring.py).
    "api": (*COMPOSITION_ADAPTERS, "RoomIndex", "CloudWatchCounters"),
}
"""Adapters each Lambda function's code can use, keyed by handler module (``handlers/<key>.py``)."""

WORKER_ADAPTER_ACTIONS: Final[Mapping[str, frozenset[str]]] = {
    # agent_worker.registry.DynamoWorkerRecord: heartbeat of the task's own item, TASK#${aws:userid}
    # (the task role allows no other key; the template passes the role id as AGENT_TASK_ROLE_ID),
    # then its draining flag read back (GetItem of that one attribute).
    "DynamoWorkerRecord": frozenset({"dynamodb:UpdateItem", "dynamodb:GetItem"}),
    # agent_worker.registry.SqsReadySignal: wakes the room the task was launched for.
    "SqsReadySignal": frozenset({"sqs:SendMessage"}),
    # agent_worker.registry.SqsJobReports: how each job ended (its own task only, by SenderId).
    "SqsJobReports": frozenset({"sqs:SendMessage"}),
}
"""API actions of the agent worker (the Fargate task role), by class."""


def actions_of(
    adapters: Iterable[str], table: Mapping[str, frozenset[str]] = ADAPTER_ACTIONS
) -> frozenset[str]:
    """The called actions of these adapters plus the actions those calls imply."""
    called: set[str] = set()
    for adapter in adapters:
        called |= table[adapter]
    implied = {extra for action in called for extra in IMPLIED_ACTIONS.get(action, {})}
    return frozenset(called | implied)


def function_actions(function: str) -> frozenset[str]:
    """Every action the code of ``handlers/<function>.py`` may call."""
    return actions_of(FUNCTION_ADAPTERS[function])


WORKER_ACTIONS: Final[frozenset[str]] = actions_of(WORKER_ADAPTER_ACTIONS, WORKER_ADAPTER_ACTIONS)
