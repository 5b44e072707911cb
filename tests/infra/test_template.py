"""template.yaml against what the code and the tests assume: table, API, triggers, ECS, alarms."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from control_plane.adapters.dynamodb_store import ATTENTION_INDEX
from control_plane.settings import METRICS_NAMESPACE, TASK_STARTED_BY, Settings
from control_plane.slot_index import SLOT_INDEX
from control_plane.task_events import RULE_STATUSES
from local import fixtures as aws
from tests.infra import cfn
from tests.infra.cfn import ROOT, get_att, ref

HANDLERS_DIR = ROOT / "functions" / "handlers"
WEBHOOK_ROUTE = ("POST", "/livekit/webhook")

# Fargate CPU units -> memory (MiB) it accepts, from the ECS task definition reference.
FARGATE_MEMORY = {
    "256": {"512", "1024", "2048"},
    "512": {str(m) for m in range(1024, 4096 + 1, 1024)},
    "1024": {str(m) for m in range(2048, 8192 + 1, 1024)},
    "2048": {str(m) for m in range(4096, 16384 + 1, 1024)},
    "4096": {str(m) for m in range(8192, 30720 + 1, 1024)},
}


def _events(function: cfn.Function, kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: event["Properties"]
        for name, event in function.properties.get("Events", {}).items()
        if event["Type"] == kind
    }


# --- state ----------------------------------------------------------------------------------


def test_table_is_the_table_the_tests_create() -> None:
    table = cfn.resource("Table")["Properties"]

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert table["KeySchema"] == aws.TABLE_KEY_SCHEMA
    assert by_name(table["AttributeDefinitions"], "AttributeName") == by_name(
        aws.TABLE_ATTRIBUTES, "AttributeName"
    )
    assert table["GlobalSecondaryIndexes"] == [aws.ATTENTION_INDEX, aws.SLOT_INDEX]
    assert aws.ATTENTION_INDEX["IndexName"] == ATTENTION_INDEX
    assert aws.SLOT_INDEX["IndexName"] == SLOT_INDEX
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_timer_queue_redrives_to_a_dead_letter_queue() -> None:
    queue = cfn.resource("TimerQueue")["Properties"]
    timer = cfn.functions()["timer"]

    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == get_att("TimerDeadLetterQueue", "Arn")
    assert 1 < queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    assert queue["VisibilityTimeout"] >= 6 * timer.properties["Timeout"], "AWS: >= 6x the consumer timeout"
    for name in ("TimerQueue", "TimerDeadLetterQueue", "EventsDeadLetterQueue"):
        assert cfn.resource(name)["Properties"]["SqsManagedSseEnabled"] is True
    assert cfn.resource("TimerDeadLetterQueue")["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


# --- API ------------------------------------------------------------------------------------


def test_only_the_livekit_webhook_route_is_open() -> None:
    auth = cfn.resource("HttpApi")["Properties"]["Auth"]
    assert auth == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}

    open_routes, routes = [], []
    for module, function in cfn.functions().items():
        for event in _events(function, "HttpApi").values():
            assert event["ApiId"] == ref("HttpApi"), "every route belongs to the one API"
            route = (event["Method"].upper(), event["Path"])
            routes.append(route)
            authorizer = event.get("Auth", {}).get("Authorizer", "AWS_IAM")
            assert authorizer in ("AWS_IAM", "NONE"), route
            if authorizer == "NONE":
                open_routes.append((module, route))
    assert open_routes == [("webhook", WEBHOOK_ROUTE)], "only the signed LiveKit webhook skips IAM"
    assert len(routes) == len(set(routes))
    source = (HANDLERS_DIR / "webhook.py").read_text()
    assert f'@app.post("{WEBHOOK_ROUTE[1]}")' in source, "the handler serves the route the API sends it"


def test_outputs_give_a_newcomer_what_they_paste_and_inspect() -> None:
    outputs = cfn.template()["Outputs"]
    assert {"WebhookUrl", "ApiUrl", "TableName", "ClusterName"} <= set(outputs)
    assert outputs["WebhookUrl"]["Value"]["Fn::Sub"].endswith(WEBHOOK_ROUTE[1])
    assert outputs["TableName"]["Value"] == ref("Table")
    assert outputs["ClusterName"]["Value"] == ref("AgentCluster")


# --- functions ------------------------------------------------------------------------------


def test_every_handler_runs_on_python_312_with_tracing_and_json_logs() -> None:
    functions = cfn.functions()
    assert set(functions) == {"webhook", "timer", "sweeper", "task_events", "api"}
    for module, function in functions.items():
        p = function.properties
        assert p["Runtime"] == "python3.12", module
        assert p["CodeUri"] == "functions/", module
        assert p["Tracing"] == "Active", module
        assert p["LoggingConfig"]["LogFormat"] == "JSON", module
        assert p["LoggingConfig"]["ApplicationLogLevel"] == {
            "Fn::FindInMap": ["LambdaLogLevels", ref("LogLevel"), "Level"]
        }, module
        log_group = cfn.resource(p["LoggingConfig"]["LogGroup"]["Ref"])
        assert log_group["Type"] == "AWS::Logs::LogGroup"
        assert log_group["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
        assert p["Timeout"] <= 60, module
        assert "Policies" not in p, f"{module}: permissions belong on its role, see test_permissions"


def test_every_log_level_maps_to_a_lambda_log_level() -> None:
    levels = cfn.template()["Mappings"]["LambdaLogLevels"]
    assert set(levels) == set(cfn.template()["Parameters"]["LogLevel"]["AllowedValues"])
    assert {level["Level"] for level in levels.values()} <= {
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "FATAL",
    }


@pytest.mark.parametrize("module", ["webhook", "timer", "sweeper", "task_events", "api"])
def test_handler_files_export_handler_and_name_the_same_service(module: str) -> None:
    path = HANDLERS_DIR / f"{module}.py"
    if not path.exists():
        pytest.skip(f"handlers/{module}.py is not written yet; the template defines its function already")
    source = path.read_text()
    assert re.search(r"^def handler\(", source, re.MULTILINE), f"handlers/{module}.py has no handler()"
    services = set(re.findall(r'service="([^"]+)"', source))
    expected = cfn.functions()[module].environment["POWERTOOLS_SERVICE_NAME"]
    assert services == {expected}, "alarms select metrics by the service dimension the handler sets"
    assert "METRICS_NAMESPACE" in source or METRICS_NAMESPACE in source


def test_timer_function_reports_partial_batch_failures() -> None:
    [event] = _events(cfn.functions()["timer"], "SQS").values()
    assert event["Queue"] == get_att("TimerQueue", "Arn")
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= event["BatchSize"] <= 10


def test_sweeper_runs_every_minute_with_retries_and_dead_letters() -> None:
    sweeper = cfn.functions()["sweeper"]
    [schedule] = _events(sweeper, "ScheduleV2").values()
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}, "quoted: YAML would read a bare OFF as false"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert schedule["DeadLetterConfig"] == {"Arn": get_att("EventsDeadLetterQueue", "Arn")}
    assert "AWS::StackName" in schedule["Name"]["Fn::Sub"], "schedule names are unique per account and Region"
    assert sweeper.properties["DeadLetterQueue"]["TargetArn"] == get_att("EventsDeadLetterQueue", "Arn")
    assert sweeper.properties["Timeout"] < 60, "a sweep ends before the next one starts"


def test_a_deploy_runs_one_sweep_as_soon_as_it_completes() -> None:
    """The warm pool fills within seconds of a create or update (issue 21), not at the schedule's
    first run; the rule hears only this stack."""
    [rule] = _events(cfn.functions()["sweeper"], "EventBridgeRule").values()
    assert rule["Pattern"] == {
        "source": ["aws.cloudformation"],
        "detail-type": ["CloudFormation Stack Status Change"],
        "detail": {
            "stack-id": [{"Ref": "AWS::StackId"}],
            "status-details": {"status": ["CREATE_COMPLETE", "UPDATE_COMPLETE"]},
        },
    }
    assert rule["DeadLetterConfig"] == {"Arn": get_att("EventsDeadLetterQueue", "Arn")}
    [statement] = cfn.resource("EventsDeadLetterQueuePolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert (
        get_att("SweeperFunctionAfterDeploy", "Arn") in statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    )


def test_task_events_hear_only_our_tasks_in_our_cluster() -> None:
    task_events = cfn.functions()["task_events"]
    [(name, rule)] = _events(task_events, "EventBridgeRule").items()
    assert rule["Pattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [get_att("AgentCluster", "Arn")],
            "startedBy": [TASK_STARTED_BY],
            "lastStatus": list(RULE_STATUSES),
        },
    }
    assert rule["DeadLetterConfig"] == {"Arn": get_att("EventsDeadLetterQueue", "Arn")}
    assert rule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert task_events.properties["DeadLetterQueue"]["TargetArn"] == get_att("EventsDeadLetterQueue", "Arn")
    # SAM names the rule <function><event>; EventBridge may only send dead letters from it.
    [statement] = cfn.resource("EventsDeadLetterQueuePolicy")["Properties"]["PolicyDocument"]["Statement"]
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert get_att(task_events.logical_id + name, "Arn") in sources


# --- agent tasks ----------------------------------------------------------------------------


def test_cluster_offers_both_capacity_providers_and_a_parameter_picks() -> None:
    cluster = cfn.resource("AgentCluster")["Properties"]
    assert set(cluster["CapacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}
    assert cluster["DefaultCapacityProviderStrategy"] == [
        {"CapacityProvider": ref("CapacityProvider"), "Weight": 1}
    ]
    parameter = cfn.template()["Parameters"]["CapacityProvider"]
    assert set(parameter["AllowedValues"]) == {"FARGATE", "FARGATE_SPOT"}
    Settings(capacity_provider=parameter["Default"])  # the functions accept the default


def test_task_definition_is_fargate_with_a_graceful_stop_and_no_writable_root() -> None:
    task = cfn.resource("AgentTaskDefinition")["Properties"]
    container = cfn.agent_container()
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert container["Name"] == Settings().agent_container_name
    assert container["StopTimeout"] == 120, "Fargate's maximum: time for the worker to drain"
    assert container["ReadonlyRootFilesystem"] is True
    [mount] = container["MountPoints"]
    assert mount["ContainerPath"] == "/tmp" and mount["SourceVolume"] in {v["Name"] for v in task["Volumes"]}
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert cfn.resource(logs["Options"]["awslogs-group"]["Ref"])["Properties"]["RetentionInDays"] == ref(
        "LogRetentionDays"
    )
    assert task["ExecutionRoleArn"] == get_att("AgentExecutionRole", "Arn")
    assert task["TaskRoleArn"] == get_att("AgentTaskRole", "Arn")


AGENT_REQUIRED_SETTINGS = {
    "livekit_url": "wss://example.livekit.cloud",
    "livekit_api_key": "devkey",
    "livekit_api_secret": "devsecret",
    "deepgram_api_key": "dg",
    "llm_api_key": "sk",
    "timer_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/timers",
    "agent_task_role_id": "AROAEXAMPLEAGENTROLE1",
}
MIN_GRACE_MARGIN = 20
"""Seconds the control plane may need beyond its grace: webhook delivery, the timer message,
the timer function's LiveKit calls. The job's own grace starts earlier (at the RTC disconnect)."""


def test_the_agents_own_grace_outlasts_the_control_planes() -> None:
    """The task gets the control plane's grace (the same parameter) and ends a job only a margin
    later: the control plane acts first; the job's own timer is the failsafe."""
    environment = {i["Name"]: i["Value"] for i in cfn.conditional_items(cfn.agent_container()["Environment"])}
    assert environment["GRACE_PERIOD_SECONDS"] == ref("GracePeriodSeconds")
    for function in cfn.functions().values():
        assert function.environment["GRACE_PERIOD_SECONDS"] == ref("GracePeriodSeconds")
    margin = (
        {"grace_margin_seconds": environment["GRACE_MARGIN_SECONDS"]}
        if "GRACE_MARGIN_SECONDS" in environment
        else {}
    )
    agent_settings = cfn.agent_module("settings").AgentSettings
    grace = cfn.template()["Parameters"]["GracePeriodSeconds"]
    for seconds in (grace["MinValue"], grace["Default"], grace["MaxValue"]):
        agent = agent_settings.model_validate(
            {**AGENT_REQUIRED_SETTINGS, **margin, "grace_period_seconds": seconds}
        )
        assert agent.job_grace_seconds >= seconds + MIN_GRACE_MARGIN


def test_writable_mounts_are_declared_volumes_of_the_image() -> None:
    """Fargate creates a bind mount root-owned 0755 unless the image declares the path a VOLUME
    (then it copies the image's permissions). The image runs as a non-root user, so without the
    VOLUME line its writable /tmp is not writable, and Python's multiprocessing cannot start."""
    dockerfile = (ROOT / "agent_container" / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    user = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    volumes = {
        path
        for line in re.findall(r"^VOLUME\s+(.+)$", final_stage, re.MULTILINE)
        for path in re.findall(r"/[\w/.-]*", line)
    }
    writable = {m["ContainerPath"] for m in cfn.agent_container()["MountPoints"] if not m.get("ReadOnly")}
    if user and user[-1] not in ("root", "0"):
        assert writable <= volumes, f"agent_container/Dockerfile needs VOLUME {sorted(writable - volumes)}"


def test_container_secrets_come_from_secret_arn_parameters() -> None:
    parameters = cfn.template()["Parameters"]
    for secret in cfn.conditional_items(cfn.agent_container()["Secrets"]):
        value = secret["ValueFrom"]
        name = (
            value["Ref"] if "Ref" in value else re.fullmatch(r"\$\{(\w+)\}:\w+::", value["Fn::Sub"]).group(1)
        )
        assert "secretsmanager" in parameters[name]["AllowedPattern"], secret["Name"]


def test_cpu_and_memory_parameters_allow_exactly_the_pairs_fargate_accepts() -> None:
    parameters = cfn.template()["Parameters"]
    rules = cfn.template()["Rules"]
    cpus = set(parameters["AgentCpu"]["AllowedValues"])
    assert cpus <= set(FARGATE_MEMORY)
    allowed: dict[str, set[str]] = {}
    for rule in rules.values():
        condition = rule.get("RuleCondition", {})
        if condition.get("Fn::Equals", [None])[0] != ref("AgentCpu"):
            continue
        cpu = condition["Fn::Equals"][1]
        [assertion] = rule["Assertions"]
        memory_list, memory_ref = assertion["Assert"]["Fn::Contains"]
        assert memory_ref == ref("AgentMemory")
        allowed[cpu] = set(memory_list)
    assert allowed == {cpu: FARGATE_MEMORY[cpu] for cpu in cpus}
    assert set(parameters["AgentMemory"]["AllowedValues"]) == set().union(*allowed.values())
    assert parameters["AgentMemory"]["Default"] in allowed[parameters["AgentCpu"]["Default"]]


def test_agent_security_group_has_no_inbound_rules() -> None:
    group = cfn.resource("AgentSecurityGroup")["Properties"]
    assert "SecurityGroupIngress" not in group
    assert not cfn.resources("AWS::EC2::SecurityGroupIngress")
    assert group["VpcId"] == ref("VpcId")
    assert all(rule.get("Description") for rule in group["SecurityGroupEgress"])
    assert cfn.template()["Parameters"]["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"


# --- alarms and dashboard -------------------------------------------------------------------


def _code_metrics() -> set[str]:
    pattern = re.compile(r'(?:\.count|add_metric|single_metric)\(\s*(?:name=)?"([A-Z]\w+)"')
    return {name for path in (ROOT / "functions").rglob("*.py") for name in pattern.findall(path.read_text())}


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str]]:
    p = alarm["Properties"]
    if "MetricName" in p:
        return [(p["Namespace"], p["MetricName"])]
    return [
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        for m in p["Metrics"]
        if "MetricStat" in m
    ]


def test_alarms_an_operator_of_voice_agents_needs() -> None:
    alarms = cfn.resources("AWS::CloudWatch::Alarm")
    watched = {metric for alarm in alarms.values() for metric in _alarm_metrics(alarm)}
    assert {
        (METRICS_NAMESPACE, "ActiveAgents"),
        (METRICS_NAMESPACE, "OldestAgentAgeSeconds"),
        (METRICS_NAMESPACE, "CrashLoops"),
        (METRICS_NAMESPACE, "WebhookRejected"),
        (METRICS_NAMESPACE, "SweepErrors"),
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= watched
    dead_letter_queues = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in alarms.values()
        if alarm["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert dead_letter_queues == {"TimerDeadLetterQueue", "EventsDeadLetterQueue"}
    topic = {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], ref("AWS::NoValue")]}
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == topic, name
        assert alarm["Properties"].get("TreatMissingData"), name


def test_alarmed_and_charted_metrics_are_ones_the_code_emits() -> None:
    emitted = _code_metrics()
    assert {"WebhookRejected", "AgentTasksLaunched", "TaskLaunchFailures"} <= emitted, (
        "the scan finds metrics"
    )
    alarmed = {
        metric
        for alarm in cfn.resources("AWS::CloudWatch::Alarm").values()
        for namespace, metric in _alarm_metrics(alarm)
        if namespace == METRICS_NAMESPACE
    }
    body = cfn.resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
    charted = set(re.findall(r'"LiveKitAgentLifecycle", "(\w+)"', body)) | set(
        re.findall(r'MetricName=\\"(\w+)\\"', body)
    )
    assert charted, "the dashboard scan finds metrics"
    assert (alarmed | charted) <= emitted, "an alarm on a metric nobody emits never fires"


# --- build and deploy configuration ---------------------------------------------------------


def _requirement_names(lines: list[str]) -> dict[str, str]:
    out = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[\[<>=~!; ]", line, maxsplit=1)[0].lower().replace("_", "-")
            out[name] = line.replace(" ", "")
    return out


def test_lambda_requirements_are_the_project_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = _requirement_names(pyproject["project"]["dependencies"])
    packaged = _requirement_names((ROOT / "functions" / "requirements.in").read_text().splitlines())
    assert packaged == declared, (
        "sam build installs the lock of functions/requirements.in; tests run pyproject's"
    )


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_samconfig_environments_set_every_required_parameter(environment: str) -> None:
    config = tomllib.loads((ROOT / "infra" / "samconfig.toml").read_text())
    parameters = cfn.template()["Parameters"]
    deploy = config[environment]["deploy"]["parameters"]
    overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
    assert set(overrides) <= set(parameters), "no override for a parameter the template lacks"
    assert {name for name, p in parameters.items() if "Default" not in p} <= set(overrides)
    for name, value in overrides.items():
        if "AllowedValues" in parameters[name]:
            assert value in [str(v) for v in parameters[name]["AllowedValues"]], name
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert config[environment]["global"]["parameters"]["stack_name"]


def test_parameter_reference_documents_every_parameter() -> None:
    reference = (ROOT / "infra" / "parameters.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", reference, re.MULTILINE))
    assert documented == set(cfn.template()["Parameters"])


def test_every_checkov_skip_says_why() -> None:
    for name, res in cfn.resources().items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "")) > 30, f"{name}: {skip['id']} needs a reason"
