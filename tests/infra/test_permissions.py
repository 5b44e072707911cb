"""IAM: the actions the code calls == control_plane.permissions == what template.yaml grants.

Three links, each checked both ways so that none can pass by being empty:

- code -> permissions: the boto3 calls each adapter makes, read from its source (calls on the
  client it is given, typed with a ``mypy_boto3_<service>`` client) and recorded on moto while
  it runs, are exactly the actions declared for it; the handlers, run in-process, call
  nothing the function is not declared to need;
- permissions -> template: each function's role grants exactly its declared actions plus the
  ones Lambda needs to run it (``PLATFORM_ACTIONS``), and the agent task role exactly the
  worker's;
- scoping: no ``*`` actions, every action on the resources this stack owns.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import botocore.session
import pytest
from botocore import xform_name
from moto import mock_aws

from api import wiring
from control_plane import composition, permissions
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.adapters.ecs_runner import EcsRunner, TaskPlacement
from control_plane.adapters.sqs_timers import SqsTimers
from control_plane.room import ChangeKind, ParticipantChange, Room
from control_plane.settings import TASK_STARTED_BY
from control_plane.worker_protocol import (
    TASK_ROLE_ID_ENV,
    WORKER_PK_PREFIX,
    GraceExpired,
    WorkerRecord,
    WorkerStatus,
)
from handlers import api, sweeper, task_events, timer, webhook
from local.fixtures import (
    CLUSTER,
    LambdaContext,
    LocalAws,
    create_table,
    ecs_task_state_change,
    http_api_event,
    scheduler_event,
    signed_headers,
    webhook_body,
)
from tests.infra import cfn
from tests.infra.cfn import ROOT, get_att, ref

CONTROL_PLANE_SOURCES = sorted((ROOT / "functions").rglob("*.py"))
WORKER_SOURCES = sorted((ROOT / "agent_container" / "agent_worker").rglob("*.py"))

# Powertools parameter helpers and providers -> the action each calls.
POWERTOOLS_PARAMETERS = {
    "SecretsProvider": "secretsmanager:GetSecretValue",
    "get_secret": "secretsmanager:GetSecretValue",
    "get_secrets_by_name": "secretsmanager:BatchGetSecretValue",
    "get_parameter": "ssm:GetParameter",
    "get_parameters": "ssm:GetParametersByPath",
    "get_parameters_by_name": "ssm:GetParameters",
}
CLIENT_HELPERS = {"get_paginator", "get_waiter"}
# Services whose IAM action prefix is not their SigV4 signing name.
IAM_PREFIXES = {"monitoring": "cloudwatch"}


def iam_prefix(service_model: Any) -> str:
    return IAM_PREFIXES.get(service_model.signing_name, service_model.signing_name)


# What Lambda itself needs to run each function, with the reason; no code calls these.
RUN_ACTIONS = {
    "logs:CreateLogStream": "Lambda writes the function's logs to its log group",
    "logs:PutLogEvents": "Lambda writes the function's logs to its log group",
    "xray:PutTraceSegments": "Tracing: Active",
    "xray:PutTelemetryRecords": "Tracing: Active",
}
PLATFORM_ACTIONS = {
    "webhook": set(RUN_ACTIONS),
    # The SQS event source mapping polls with the function's role.
    "timer": set(RUN_ACTIONS) | {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
    # Lambda sends failed asynchronous invocations to the function's dead-letter queue; the sweep
    # queue's event source mapping polls with the function's role.
    "sweeper": set(RUN_ACTIONS)
    | {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
    "task_events": set(RUN_ACTIONS) | {"sqs:SendMessage"},
    "api": set(RUN_ACTIONS),
}

TABLE = get_att("Table", "Arn")
ARN_PREFIX = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}"
TASK_DEFINITIONS = {"Fn::Sub": ARN_PREFIX + ":task-definition/${AWS::StackName}-agent:*"}
TASKS_IN_CLUSTER = {"Fn::Sub": ARN_PREFIX + ":task/${AgentCluster}/*"}
IN_CLUSTER = {"ArnEquals": {"ecs:cluster": get_att("AgentCluster", "Arn")}}
# action -> (resources it may be granted on, condition it must carry)
SCOPES: dict[str, tuple[list[Any], dict[str, Any] | None]] = {
    "dynamodb:GetItem": ([TABLE], None),
    "dynamodb:PutItem": ([TABLE], None),
    "dynamodb:UpdateItem": ([TABLE], None),
    "dynamodb:DeleteItem": ([TABLE], None),
    "dynamodb:Query": (
        [{"Fn::Sub": "${Table.Arn}/index/attention-index"}, {"Fn::Sub": "${Table.Arn}/index/slot-index"}],
        None,
    ),
    "ecs:RunTask": ([TASK_DEFINITIONS], IN_CLUSTER),
    "ecs:TagResource": ([TASKS_IN_CLUSTER], {"StringEquals": {"ecs:CreateAction": "RunTask"}}),
    "ecs:StopTask": ([TASKS_IN_CLUSTER], IN_CLUSTER),
    "ecs:DescribeTasks": ([TASKS_IN_CLUSTER], IN_CLUSTER),
    "ecs:ListTasks": (["*"], IN_CLUSTER),
    "iam:PassRole": (
        [get_att("AgentTaskRole", "Arn"), get_att("AgentExecutionRole", "Arn")],
        {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    ),
    "sqs:SendMessage": (
        [get_att("TimerQueue", "Arn"), get_att("EventsDeadLetterQueue", "Arn"), get_att("SweepQueue", "Arn")],
        None,
    ),
    "secretsmanager:GetSecretValue": ([ref("LiveKitSecretArn")], None),
    "sqs:ReceiveMessage": ([get_att("TimerQueue", "Arn"), get_att("SweepQueue", "Arn")], None),
    "sqs:DeleteMessage": ([get_att("TimerQueue", "Arn"), get_att("SweepQueue", "Arn")], None),
    "sqs:GetQueueAttributes": ([get_att("TimerQueue", "Arn"), get_att("SweepQueue", "Arn")], None),
    "sqs:ChangeMessageVisibility": ([get_att("TimerQueue", "Arn")], None),
    "xray:PutTraceSegments": (["*"], None),
    "xray:PutTelemetryRecords": (["*"], None),
    "cloudwatch:GetMetricData": (["*"], None),
    "cloudwatch:ListMetrics": (["*"], None),
}
# Actions IAM cannot scope to a resource or a condition at all.
UNSCOPABLE = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
}


# --- code -> permissions (static) -----------------------------------------------------------


@cache
def _operations(service: str) -> tuple[str, dict[str, str]]:
    """IAM prefix of a service and its boto3 method names -> API operation names."""
    model = botocore.session.get_session().get_service_model(service)
    return iam_prefix(model), {xform_name(op): op for op in model.operation_names}


def _action(service: str, method: str) -> str:
    prefix, operations = _operations(service)
    assert method in operations, f"{service} client has no operation {method!r}"
    return f"{prefix}:{operations[method]}"


def _client_types(tree: ast.Module) -> dict[str, str]:
    """``DynamoDBClient`` -> ``dynamodb`` from ``from mypy_boto3_dynamodb.client import ...``."""
    types = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mypy_boto3_"):
            service = node.module.removeprefix("mypy_boto3_").split(".")[0]
            for alias in node.names:
                if alias.name.endswith("Client"):
                    types[alias.asname or alias.name] = service
    return types


def _annotation_name(annotation: ast.expr | None) -> str | None:
    if isinstance(annotation, ast.Name):
        return annotation.id
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value
    return None


def _class_calls(cls: ast.ClassDef, client_types: dict[str, str]) -> set[str]:
    """Actions of every call on a client the class was given in ``__init__``."""
    clients: dict[str, str] = {}
    for init in (f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"):
        params = {
            arg.arg: client_types[name]
            for arg in [*init.args.args, *init.args.kwonlyargs]
            if (name := _annotation_name(arg.annotation)) in client_types
        }
        for node in ast.walk(init):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in params:
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        clients[target.attr] = params[node.value.id]
    found = set()
    for node in ast.walk(cls):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.attr in clients:
            method = node.func.attr
            if method in CLIENT_HELPERS:
                assert isinstance(node.args[0], ast.Constant), f"{cls.name}: {method} of a computed name"
                method = str(node.args[0].value)
            found.add(_action(clients[owner.attr], method))
    return found


def _function_calls(func: ast.FunctionDef) -> set[str]:
    """Actions of Powertools parameter helpers a module-level function calls."""
    found = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in POWERTOOLS_PARAMETERS:
                found.add(POWERTOOLS_PARAMETERS[name])
    return found


def scan(paths: list[Path]) -> dict[str, set[str]]:
    """Unit (class or module-level function) -> the actions its source calls."""
    units: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        client_types = _client_types(tree)
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                calls = _class_calls(node, client_types)
            elif isinstance(node, ast.FunctionDef):
                calls = _function_calls(node)
            else:
                continue
            if calls:
                assert node.name not in units, f"two units named {node.name}"
                units[node.name] = calls
    return units


def _boto3_entry_points(paths: list[Path]) -> list[tuple[str, str, str]]:
    """(file, boto3 function, service) for every boto3.client/resource/Session call."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "boto3"
            ):
                service = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
                found.append((path.name, node.func.attr, str(service)))
    return found


def test_the_scan_sees_the_calls_it_must_see() -> None:
    """Guards the guard: an AST scan that found nothing would make the next test pass."""
    units = scan(CONTROL_PLANE_SOURCES)
    assert "dynamodb:UpdateItem" in units["DynamoDBStore"]
    assert "dynamodb:Query" in units["DynamoDBStore"], "get_paginator('query') counts as Query"
    assert "ecs:RunTask" in units["EcsRunner"]
    assert units["secrets_provider"] == {"secretsmanager:GetSecretValue"}


def test_control_plane_calls_are_exactly_the_declared_ones() -> None:
    assert scan(CONTROL_PLANE_SOURCES) == dict(permissions.ADAPTER_ACTIONS), (
        "a boto3 call was added or removed: declare it in control_plane/permissions.py"
        " and grant it in template.yaml"
    )


def test_agent_worker_calls_are_exactly_the_declared_ones() -> None:
    assert scan(WORKER_SOURCES) == dict(permissions.WORKER_ADAPTER_ACTIONS)


def test_clients_are_made_only_for_declared_services() -> None:
    declared = {
        action.split(":")[0] for actions in permissions.ADAPTER_ACTIONS.values() for action in actions
    }
    worker_declared = {
        a.split(":")[0] for actions in permissions.WORKER_ADAPTER_ACTIONS.values() for a in actions
    }
    for sources, services in ((CONTROL_PLANE_SOURCES, declared), (WORKER_SOURCES, worker_declared)):
        entry_points = _boto3_entry_points(sources)
        assert entry_points, "the scan finds boto3.client calls"
        for file, function, service in entry_points:
            assert function == "client", (
                f"{file}: boto3.{function} calls cannot be checked; use a typed client"
            )
            assert service in services, f"{file}: a {service} client, but no {service} action is declared"


def test_composition_builds_the_declared_adapters() -> None:
    source = (ROOT / "functions" / "control_plane" / "composition.py").read_text()
    tree = ast.parse(source)
    built = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in permissions.ADAPTER_ACTIONS
    }
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert built | (defined & set(permissions.ADAPTER_ACTIONS)) == set(permissions.COMPOSITION_ADAPTERS)


# --- code -> permissions (recorded on moto) -------------------------------------------------


class Recorder:
    """Every API call made through any boto3 client, as IAM actions."""

    def __init__(self) -> None:
        self.actions: set[str] = set()

    def on(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self._record)
        return client

    def _record(self, model: Any, **_: Any) -> None:
        self.actions.add(f"{iam_prefix(model.service_model)}:{model.name}")


def _exercise(adapter: object, calls: list[tuple[str, Callable[[Callable[..., Any]], Any]]]) -> None:
    for name, call in calls:
        method = getattr(adapter, name, None)
        if method is not None:
            call(method)


@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        yield


@pytest.mark.usefixtures("moto_env")
def test_recorded_dynamodb_store_calls_are_the_declared_ones() -> None:
    recorder = Recorder()
    client = recorder.on(boto3.client("dynamodb"))
    create_table(client, "rooms")
    recorder.actions.clear()
    store = DynamoDBStore(client, "rooms")
    arn = "arn:aws:ecs:us-east-1:123456789012:task/agents/abc"
    joined = ParticipantChange(
        kind=ChangeKind.JOINED, room="r", room_sid="RM_1", sid="PA_1", identity="a", at=1.0
    )
    _exercise(
        store,
        [
            ("create", lambda m: m(Room(name="solo", sid="RM_9"))),
            ("get", lambda m: m("solo")),
            ("save", lambda m: m(Room(name="solo", sid="RM_9"), 1)),
            ("observe_participant", lambda m: m(joined)),
            ("claim_event", lambda m: m("EV_1", 1, 100)),
            ("release_event", lambda m: m("EV_1")),
            ("rooms_needing_attention", lambda m: list(m())),
            (
                "put_worker",
                lambda m: m(
                    WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=1.0)
                ),
            ),
            ("get_worker", lambda m: m(arn)),
            ("mark_draining", lambda m: m(arn)),
            ("live_workers", lambda m: list(m())),
        ],
    )
    assert recorder.actions == permissions.ADAPTER_ACTIONS["DynamoDBStore"]


@pytest.mark.usefixtures("moto_env")
def test_recorded_ecs_runner_calls_are_the_declared_ones() -> None:
    recorder = Recorder()
    client = recorder.on(boto3.client("ecs"))
    ec2 = boto3.client("ec2")
    client.create_cluster(clusterName="agents", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    client.register_task_definition(
        family="agent",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[{"name": "agent", "image": "agent:local", "memory": 2048}],
    )
    recorder.actions.clear()
    runner = EcsRunner(
        client,
        TaskPlacement(
            cluster="agents",
            task_definition="agent",
            container_name="agent",
            subnets=[ec2.describe_subnets()["Subnets"][0]["SubnetId"]],
            security_groups=[ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]],
            capacity_provider="FARGATE",
            assign_public_ip=False,
            started_by=TASK_STARTED_BY,
        ),
    )
    (launched,) = runner.launch("room-1", "token-1")
    _exercise(
        runner, [("find_launched", lambda m: m("token-1")), ("stop", lambda m: m(launched.task_arn, "done"))]
    )
    assert recorder.actions == {
        action for action in permissions.ADAPTER_ACTIONS["EcsRunner"] if action.startswith("ecs:")
    }


@pytest.mark.usefixtures("moto_env")
def test_recorded_sqs_timers_and_secret_calls_are_the_declared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    sqs = recorder.on(boto3.client("sqs"))
    url = sqs.create_queue(QueueName="timers")["QueueUrl"]
    recorder.actions.clear()
    SqsTimers(sqs, url).send(GraceExpired(room="r", generation=1), 0)
    assert recorder.actions == permissions.ADAPTER_ACTIONS["SqsTimers"]

    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="lk", SecretString=json.dumps({"api_key": "k", "api_secret": "s"}))[
        "ARN"
    ]
    monkeypatch.setenv("LIVEKIT_SECRET_ARN", arn)
    seen: set[str] = set()
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        seen.add(f"{iam_prefix(self.meta.service_model)}:{operation}")
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    composition.reset()
    try:
        assert composition.livekit_credentials() == ("k", "s")
    finally:
        composition.reset()
    assert seen == permissions.ADAPTER_ACTIONS["secrets_provider"]


def test_handlers_call_only_what_their_function_may(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every handler in-process, through a join, the task's state changes, a sweep, a leave and
    the grace timer: each calls only actions its function is declared (and granted) to have."""
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        calls.append(f"{iam_prefix(self.meta.service_model)}:{operation}")
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    seen: dict[str, set[str]] = {module: set() for module in permissions.FUNCTION_ADAPTERS}

    def run(module: str, invoke: Callable[[], Any]) -> Any:
        calls.clear()
        result = invoke()
        seen[module] |= set(calls)
        return result

    key, secret = aws.livekit.api_key, aws.livekit.api_secret

    def post(body: bytes) -> None:
        response = webhook.handler(http_api_event(body, signed_headers(body, key, secret)), LambdaContext())
        assert response["statusCode"] == 200, response

    run("webhook", lambda: post(webhook_body("participant_joined", sid="PA_1")))
    [task_arn] = boto3.client("ecs").list_tasks(cluster=CLUSTER, startedBy=TASK_STARTED_BY)["taskArns"]
    run(
        "task_events",
        lambda: task_events.handler(ecs_task_state_change(task_arn, "RUNNING", 2), LambdaContext()),
    )
    run("sweeper", lambda: sweeper.handler(scheduler_event(), LambdaContext()))
    run("webhook", lambda: post(webhook_body("participant_left", sid="PA_1")))
    message = GraceExpired(room="room-1", generation=1).model_dump_json()
    record_event = {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": message,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:timers",
        "awsRegion": "us-east-1",
    }
    run("timer", lambda: timer.handler({"Records": [record_event]}, LambdaContext()))
    stopped = ecs_task_state_change(task_arn, "STOPPED", 5, stop_code="EssentialContainerExited", exit_code=1)
    run("task_events", lambda: task_events.handler(stopped, LambdaContext()))
    wiring.reset()
    for method, path, body in (
        ("POST", "/rooms/room-2/join", b'{"identity": "bob"}'),
        ("GET", "/rooms", b""),
        ("GET", "/rooms/room-2", b""),
        ("GET", "/stats", b""),
        ("POST", "/rooms/room-2/close", b'{"delete_room": true}'),
        ("POST", "/rooms/room-1/reset", b""),
        ("POST", "/gc", b""),
    ):
        event = http_api_event(body, {"content-type": "application/json"}, path=path, method=method)
        answer = run("api", lambda event=event: api.handler(event, LambdaContext()))  # type: ignore[misc]
        assert answer["statusCode"] == 200, (path, answer)
    wiring.reset()

    assert {"ecs:RunTask", "secretsmanager:GetSecretValue"} <= seen["webhook"], (
        "the flow reached ECS and the secret"
    )
    assert "dynamodb:Query" in seen["sweeper"], "the sweep read the attention index"
    # CloudWatch holds none of our metrics here, so /stats stops at ListMetrics (api/counters.py).
    assert {"cloudwatch:ListMetrics", "ecs:RunTask", "ecs:StopTask"} <= seen["api"], "the API flow ran"
    for module, actions in seen.items():
        assert actions, f"handlers/{module}.py made no AWS call: the flow did not reach it"
        assert actions <= permissions.function_actions(module), (
            f"handlers/{module}.py called {sorted(actions - permissions.function_actions(module))}"
        )


# --- permissions -> template ----------------------------------------------------------------


def test_each_function_role_grants_exactly_what_its_code_and_lambda_need() -> None:
    functions = cfn.functions()
    assert set(functions) == set(permissions.FUNCTION_ADAPTERS) == set(PLATFORM_ACTIONS)
    for module, function in functions.items():
        statements = cfn.role_statements(cfn.function_role(function))
        granted = cfn.actions(statements)
        expected = permissions.function_actions(module) | PLATFORM_ACTIONS[module]
        assert granted == expected, (
            f"{function.logical_id}: grants {sorted(granted - expected)} it does not use, "
            f"lacks {sorted(expected - granted)}"
        )


def _check_scoped(role: str, scopes: dict[str, tuple[list[Any], dict[str, Any] | None]]) -> None:
    for statement in cfn.role_statements(role):
        assert statement["Effect"] == "Allow", role
        assert "NotAction" not in statement and "NotResource" not in statement, role
        for action in cfn.listify(statement["Action"]):
            assert "*" not in action, f"{role}: wildcard action {action}"
            allowed, condition = scopes[action]
            for resource in cfn.listify(statement["Resource"]):
                assert resource in allowed, f"{role}: {action} on {resource}"
            if condition is not None:
                assert statement.get("Condition") == condition, f"{role}: {action} needs {condition}"
            if "*" in cfn.listify(statement["Resource"]):
                assert action in UNSCOPABLE or statement.get("Condition"), f"{role}: {action} on *"


def test_function_permissions_are_scoped_to_this_stack() -> None:
    family = cfn.resource("AgentTaskDefinition")["Properties"]["Family"]["Fn::Sub"]
    assert TASK_DEFINITIONS["Fn::Sub"].endswith(f"task-definition/{family}:*"), "RunTask on our family"
    for function in cfn.functions().values():
        own_logs = [get_att(function.properties["LoggingConfig"]["LogGroup"]["Ref"], "Arn")]
        logs = {"logs:CreateLogStream": (own_logs, None), "logs:PutLogEvents": (own_logs, None)}
        _check_scoped(cfn.function_role(function), {**SCOPES, **logs})


def test_dead_letters_go_only_where_the_function_sends_them() -> None:
    dead_letters = get_att("EventsDeadLetterQueue", "Arn")
    for module, function in cfn.functions().items():
        for statement in cfn.role_statements(cfn.function_role(function)):
            if "sqs:SendMessage" in cfn.listify(statement["Action"]) and dead_letters in cfn.listify(
                statement["Resource"]
            ):
                assert function.properties["DeadLetterQueue"]["TargetArn"] == dead_letters, module


AGENT_TASK_ROLE_ID = "AROAEXAMPLEAGENTROLE1"
WORKER_WRITTEN = {"pk", "task_arn", "status", "capacity", "jobs", "heartbeat_at", "launched_for"}
"""What the task role may write: the worker's own fields and the key (``dynamodb:Attributes``)."""
WORKER_READ = {"pk", "draining"}
TASK_ID = "0123456789abcdef0123456789abcdef"
NEIGHBOUR_TASK_ID = "fedcba9876543210fedcba9876543210"


def _task_arn(task_id: str) -> str:
    return f"arn:aws:ecs:eu-west-1:123456789012:task/agents/{task_id}"


def _allows(
    condition: dict[str, Any], *, userid: str, leading_keys: list[str], request: dict[str, Any] | None = None
) -> bool:
    """IAM's verdict on the task role's DynamoDB conditions for a caller whose ``aws:userid``
    is ``userid`` (the operators the role may use, policy variables resolved). ``request``
    holds the other condition keys: ``dynamodb:Attributes`` (a list), ``dynamodb:ReturnValues``
    and ``dynamodb:Select`` (absent when the request does not set them)."""
    context: dict[str, Any] = {"dynamodb:LeadingKeys": leading_keys, **(request or {})}
    for operator, keys in condition.items():
        for key, patterns in keys.items():
            assert key.startswith("dynamodb:"), key
            resolved = [pattern.replace("${aws:userid}", userid) for pattern in cfn.listify(patterns)]
            value = context.get(key)
            if operator == "StringEqualsIfExists":
                if value is not None and value not in resolved:
                    return False
                continue
            match = {
                "ForAllValues:StringEquals": lambda v, p: v == p,
                "ForAllValues:StringLike": fnmatch.fnmatchcase,
            }[operator]
            if not all(any(match(v, p) for p in resolved) for v in value or []):
                return False
    return True


_EXPRESSION_WORDS = frozenset(
    {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "IN", "BETWEEN"}
    | {"if_not_exists", "list_append", "attribute_exists", "attribute_not_exists", "attribute_type"}
    | {"begins_with", "contains", "size"}
)


def _request_attributes(params: dict[str, Any]) -> set[str]:
    """Every attribute a DynamoDB item request names, as IAM's ``dynamodb:Attributes`` sees
    it: the key, ``#name`` placeholders, and bare names in its expressions."""
    names = dict(params.get("ExpressionAttributeNames", {}))
    found = set(params.get("Key", {}))
    for field in ("UpdateExpression", "ConditionExpression", "ProjectionExpression"):
        expression = params.get(field, "")
        found |= {names[token] for token in re.findall(r"#\w+", expression)}
        bare = re.sub(r"[#:]\w+", " ", expression)
        found |= {word for word in re.findall(r"[A-Za-z_]\w*", bare) if word not in _EXPRESSION_WORDS}
    return found


def _worker_requests() -> list[tuple[str, dict[str, Any]]]:
    """The DynamoDB requests a worker makes over its life (ready, busy, draining, stopped),
    recorded on moto: (operation, parameters)."""
    registry = cfn.agent_module("registry")
    recorded: list[tuple[str, dict[str, Any]]] = []
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(client, "lifecycle")
        client.meta.events.register(
            "provide-client-params.dynamodb.*",
            lambda params, model, **_: recorded.append((model.name, dict(params))),
        )
        record = registry.DynamoWorkerRecord(
            client,
            "lifecycle",
            task_arn=_task_arn(TASK_ID),
            task_role_id=AGENT_TASK_ROLE_ID,
            capacity=2,
            launched_for="standup",
        )
        for status, jobs in [
            ("ready", {}),
            ("ready", {"standup": "AJ_1"}),
            ("draining", {}),
            ("stopped", {}),
        ]:
            record.write(WorkerStatus(status), jobs, 1_700_000_000.0)
    return recorded


def test_agent_task_role_may_only_heartbeat_worker_items_and_signal_ready() -> None:
    statements = cfn.role_statements("AgentTaskRole")
    assert cfn.actions(statements) == permissions.WORKER_ACTIONS
    _check_scoped(
        "AgentTaskRole",
        {
            "dynamodb:UpdateItem": (
                [TABLE],
                {
                    "ForAllValues:StringEquals": {
                        "dynamodb:LeadingKeys": [WORKER_PK_PREFIX + "${aws:userid}"],
                        "dynamodb:Attributes": sorted(WORKER_WRITTEN),
                    },
                    "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_OLD", "UPDATED_NEW"]},
                },
            ),
            "dynamodb:GetItem": (
                [TABLE],
                {
                    "ForAllValues:StringEquals": {
                        "dynamodb:LeadingKeys": [WORKER_PK_PREFIX + "${aws:userid}"],
                        "dynamodb:Attributes": sorted(WORKER_READ),
                    },
                    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
                },
            ),
            "sqs:SendMessage": ([get_att("TimerQueue", "Arn")], None),
        },
    )


def test_a_task_may_write_only_the_attributes_its_worker_owns() -> None:
    """Not ``attention`` (a task that tags its item ``room`` would join ``GET /rooms`` and the
    sweep's room list) nor any attribute the control plane owns, nor read back more than the
    drain flag: the worker's own requests name only what the role allows, and the role
    refuses the rest."""
    update = _statement_with("AgentTaskRole", "dynamodb:UpdateItem")["Condition"]
    read = _statement_with("AgentTaskRole", "dynamodb:GetItem")["Condition"]
    own = cfn.agent_module("registry").worker_key(_task_arn(TASK_ID), AGENT_TASK_ROLE_ID)
    userid = f"{AGENT_TASK_ROLE_ID}:{TASK_ID}"
    requests = _worker_requests()

    registry = cfn.agent_module("registry")
    assert (registry.WORKER_WRITTEN_ATTRIBUTES, registry.WORKER_READ_ATTRIBUTES) == (
        WORKER_WRITTEN,
        WORKER_READ,
    )
    assert {operation for operation, _ in requests} == {"UpdateItem", "GetItem"}
    for operation, params in requests:
        condition = update if operation == "UpdateItem" else read
        context = {"dynamodb:Attributes": sorted(_request_attributes(params))}
        context |= {"dynamodb:ReturnValues": params["ReturnValues"]} if "ReturnValues" in params else {}
        assert _allows(condition, userid=userid, leading_keys=[own], request=context), (operation, context)

    def may_write(*attributes: str, returns: str | None = None) -> bool:
        context: dict[str, Any] = {"dynamodb:Attributes": ["pk", *attributes]}
        context |= {"dynamodb:ReturnValues": returns} if returns else {}
        return _allows(update, userid=userid, leading_keys=[own], request=context)

    assert may_write("heartbeat_at", "status", "jobs")
    control_plane_owned = ["attention", "draining", "reserved", "assigned", "launched_at", "ecs_version"]
    for attribute in [*control_plane_owned, "stop_code", "expires_at", "name"]:
        assert not may_write("heartbeat_at", attribute), attribute
    # The slot index's keys: a task filing itself free#<shard> with a huge slot_free would be
    # offered to every room a slot decision makes, to take their calls (or drop them).
    assert not may_write("heartbeat_at", "slot_key") and not may_write("heartbeat_at", "slot_free")
    for attribute in set(WorkerRecord.model_fields) - WORKER_WRITTEN:
        assert not may_write(attribute), f"{attribute} is the control plane's, never the task's"
    assert not may_write("heartbeat_at", returns="ALL_NEW"), "ALL_NEW returns the control plane's fields"
    assert not _allows(
        read,
        userid=userid,
        leading_keys=[own],
        request={"dynamodb:Attributes": ["pk", "draining", "reserved"]},
    )
    assert not _allows(read, userid=userid, leading_keys=[own], request={"dynamodb:Select": "ALL_ATTRIBUTES"})


def test_a_task_may_write_its_own_worker_item_and_no_other() -> None:
    """ECS names the session of a task's role credentials after the task ID, so their
    ``aws:userid`` is ``<role id>:<task id>``. The worker keys its item from the role id the
    task definition gives it: that key, and only that key, is what the role lets it write."""
    environment = {
        item["Name"]: item["Value"] for item in cfn.conditional_items(cfn.agent_container()["Environment"])
    }
    assert environment[TASK_ROLE_ID_ENV] == get_att("AgentTaskRole", "RoleId")
    [statement] = [
        s for s in cfn.role_statements("AgentTaskRole") if "dynamodb:UpdateItem" in cfn.listify(s["Action"])
    ]
    worker_key = cfn.agent_module("registry").worker_key
    own_credentials = f"{AGENT_TASK_ROLE_ID}:{TASK_ID}"

    def allowed(key: str) -> bool:
        return _allows(statement["Condition"], userid=own_credentials, leading_keys=[key])

    assert allowed(worker_key(_task_arn(TASK_ID), AGENT_TASK_ROLE_ID)), "its own heartbeat"
    assert not allowed(worker_key(_task_arn(NEIGHBOUR_TASK_ID), AGENT_TASK_ROLE_ID)), "another worker's item"
    assert not allowed(WORKER_PK_PREFIX + _task_arn(NEIGHBOUR_TASK_ID)), "a key named by task ARN"
    assert not allowed(WORKER_PK_PREFIX + _task_arn(TASK_ID)), "a key anyone can name"
    assert not allowed("ROOM#standup"), "a room"
    assert not allowed(worker_key(_task_arn(TASK_ID), "AROAANOTHERROLE")), "a key made with a wrong role id"


def _statement_with(role: str, action: str) -> dict[str, Any]:
    [statement] = [s for s in cfn.role_statements(role) if action in cfn.listify(s["Action"])]
    return statement


def test_execution_role_reads_only_the_secrets_the_container_gets() -> None:
    statements = cfn.role_statements("AgentExecutionRole")
    secrets = _statement_with("AgentExecutionRole", "secretsmanager:GetSecretValue")
    granted = cfn.conditional_items(cfn.listify(secrets["Resource"]))
    needed = []
    for secret in cfn.conditional_items(cfn.agent_container()["Secrets"]):
        value = secret["ValueFrom"]
        needed.append(value if "Ref" in value else ref(value["Fn::Sub"].split("}")[0].removeprefix("${")))
    assert sorted(map(str, granted)) == sorted({str(n) for n in needed})
    assert all("*" not in action for action in cfn.actions(statements))
    assert cfn.actions(statements) == {
        "ecr:GetAuthorizationToken",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    }


def test_the_agent_gets_a_livekit_key_of_its_own_never_the_one_the_webhook_accepts() -> None:
    """The webhook verifies with ``LiveKitSecretArn``'s key: an agent task holding it could sign
    webhooks. The agent's LiveKit key comes from ``AgentLiveKitSecretArn``, a Rule refuses the
    same secret for both, and no agent role may read the control plane's."""
    secrets = {
        item["Name"]: item["ValueFrom"] for item in cfn.conditional_items(cfn.agent_container()["Secrets"])
    }
    assert secrets["LIVEKIT_API_KEY"] == {"Fn::Sub": "${AgentLiveKitSecretArn}:api_key::"}
    assert secrets["LIVEKIT_API_SECRET"] == {"Fn::Sub": "${AgentLiveKitSecretArn}:api_secret::"}
    container = json.dumps(cfn.agent_container())
    assert "${LiveKitSecretArn}" not in container and '{"Ref": "LiveKitSecretArn"}' not in container
    for role in ("AgentExecutionRole", "AgentTaskRole"):
        granted = json.dumps(cfn.role_statements(role))
        assert '{"Ref": "LiveKitSecretArn"}' not in granted, role
    execution = _statement_with("AgentExecutionRole", "secretsmanager:GetSecretValue")
    assert ref("AgentLiveKitSecretArn") in cfn.listify(execution["Resource"])
    rule = cfn.template()["Rules"]["AgentKeyIsNotTheWebhookKey"]
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [ref("AgentLiveKitSecretArn"), ref("LiveKitSecretArn")]}]
    }


def test_execution_role_logs_only_to_the_agent_log_group_and_logs_in_to_ecr_only() -> None:
    logs = _statement_with("AgentExecutionRole", "logs:PutLogEvents")
    assert set(cfn.listify(logs["Action"])) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert cfn.agent_container()["LogConfiguration"]["Options"]["awslogs-group"] == ref("AgentLogGroup")
    assert cfn.listify(logs["Resource"]) == [get_att("AgentLogGroup", "Arn")]
    login = _statement_with("AgentExecutionRole", "ecr:GetAuthorizationToken")
    assert cfn.listify(login["Action"]) == ["ecr:GetAuthorizationToken"], "the only action granted on *"
    assert cfn.listify(login["Resource"]) == ["*"]


@pytest.mark.parametrize(
    ("partition", "image", "repository"),
    [
        (
            "aws",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/livekit-agent:3f2a1c9d8e7b",
            "arn:aws:ecr:us-east-1:123456789012:repository/livekit-agent",
        ),
        (
            "aws",
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/voice.agent@sha256:" + "ab" * 32,
            "arn:aws:ecr:eu-west-1:210987654321:repository/team/voice.agent",
        ),
        (
            "aws-cn",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/livekit-agent:2026-01-01-abc1234",
            "arn:aws-cn:ecr:cn-north-1:123456789012:repository/livekit-agent",
        ),
    ],
)
def test_execution_role_pulls_only_the_agent_images_repository(
    partition: str, image: str, repository: str
) -> None:
    assert re.fullmatch(cfn.template()["Parameters"]["AgentImageUri"]["AllowedPattern"], image)
    assert cfn.agent_container()["Image"] == ref("AgentImageUri")
    pull = _statement_with("AgentExecutionRole", "ecr:BatchGetImage")
    assert set(cfn.listify(pull["Action"])) == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert "Condition" not in pull
    [resource] = cfn.listify(pull["Resource"])
    assert cfn.evaluate(resource, {"AgentImageUri": image, "AWS::Partition": partition}) == repository


def test_only_lambda_and_ecs_tasks_assume_the_roles() -> None:
    principals = {}
    for name, role in cfn.resources("AWS::IAM::Role").items():
        [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        principals[name] = statement["Principal"]["Service"]
    function_roles = {cfn.function_role(f) for f in cfn.functions().values()}
    assert {
        name for name, service in principals.items() if service == "lambda.amazonaws.com"
    } == function_roles
    assert {name for name, service in principals.items() if service == "ecs-tasks.amazonaws.com"} == {
        "AgentTaskRole",
        "AgentExecutionRole",
    }
