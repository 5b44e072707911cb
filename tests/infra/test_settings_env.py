"""Every setting the code reads is set by the template, for each function and for the agent task.

The Lambda functions read ``control_plane.settings.Settings``. ``composition.ports`` builds every
adapter for any handler (the webhook can launch a task, the timer can stop one), so each
function needs the whole set; only tuning knobs whose defaults are right for every deployment
may be left out, and they are listed here by name. The agent container reads
``agent_worker.settings.AgentSettings``.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from typing import Any

from pydantic_settings import BaseSettings

from control_plane.settings import Settings
from control_plane.worker_protocol import LAUNCHED_FOR_ROOM_ENV
from tests.infra import cfn
from tests.infra.cfn import ROOT, get_att, ref

# Settings the template leaves at their code default on purpose (same value everywhere).
TUNING_DEFAULTS = {
    "CLAIM_LEASE_SECONDS",
    "WORKER_STALE_SECONDS",
    "WORKER_START_TIMEOUT_SECONDS",
    "HISTORY_TTL_SECONDS",
    "EVENT_DEDUPE_TTL_SECONDS",
    "ROOM_DEPARTURE_MARGIN_SECONDS",
    "CRASH_WINDOW_SECONDS",
    "SWEEP_CONCURRENCY",
    "SWEEP_SAFETY_MARGIN_SECONDS",
    "SWEEP_AUDIT_PERIOD_SECONDS",
}
PLATFORM_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}

# Values that must be the same template expression for the functions and the agent.
SHARED_WITH_AGENT = {
    "AGENT_NAME",
    "LIVEKIT_URL",
    "TABLE_NAME",
    "TIMER_QUEUE_URL",
    "GRACE_PERIOD_SECONDS",
    "MAX_AGENT_AGE_SECONDS",
    "SLOTS_PER_TASK",
    "JOBS_PER_TASK",
    "AGENT_TASK_ROLE_ID",
}


def _env_names(model: type[BaseSettings]) -> dict[str, str]:
    """Environment variable name -> field name (pydantic-settings, case-insensitive)."""
    names = {}
    for field_name, field in model.model_fields.items():
        alias = field.validation_alias
        names[(alias if isinstance(alias, str) else field_name).upper()] = field_name
    return names


@cache
def _agent_settings() -> type[BaseSettings]:
    """``agent_worker.settings`` loaded by path: its package needs livekit-agents, this file does not."""
    path = ROOT / "agent_container" / "agent_worker" / "settings.py"
    spec = importlib.util.spec_from_file_location("_agent_worker_settings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    model: type[BaseSettings] = module.AgentSettings
    return model


def _container_env() -> tuple[dict[str, Any], dict[str, Any]]:
    container = cfn.agent_container()
    environment = {item["Name"]: item["Value"] for item in cfn.conditional_items(container["Environment"])}
    secrets = {item["Name"]: item["ValueFrom"] for item in cfn.conditional_items(container["Secrets"])}
    return environment, secrets


def test_each_function_sets_every_deployment_setting() -> None:
    settings = _env_names(Settings)
    assert set(settings) >= TUNING_DEFAULTS, "a tuning default names a setting that no longer exists"
    required = set(settings) - TUNING_DEFAULTS
    for module, function in cfn.functions().items():
        environment = set(function.environment)
        missing = required - environment
        assert not missing, f"{function.logical_id} ({module}) leaves {sorted(missing)} at code defaults"
        unknown = environment - set(settings) - PLATFORM_VARIABLES
        assert not unknown, f"{function.logical_id} sets {sorted(unknown)}, which no setting reads"


def test_function_settings_point_at_this_stacks_resources() -> None:
    for function in cfn.functions().values():
        env = function.environment
        assert env["TABLE_NAME"] == ref("Table")
        assert env["TIMER_QUEUE_URL"] == ref("TimerQueue")
        assert env["ECS_CLUSTER"] == ref("AgentCluster")
        assert env["TASK_DEFINITION"] == ref("AgentTaskDefinition")
        assert env["AGENT_CONTAINER_NAME"] == cfn.agent_container()["Name"]
        assert env["SUBNETS"] == {"Fn::Join": [",", ref("SubnetIds")]}, "Settings reads a comma list"
        assert env["SECURITY_GROUPS"] == get_att("AgentSecurityGroup", "GroupId")
        assert env["CAPACITY_PROVIDER"] == ref("CapacityProvider")
        assert env["LIVEKIT_SECRET_ARN"] == ref("LiveKitSecretArn")
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LiveKitAgentLifecycle"


def test_parameter_values_parse_as_settings() -> None:
    parameters = cfn.template()["Parameters"]
    for flag in parameters["AssignPublicIp"]["AllowedValues"]:
        for provider in parameters["CapacityProvider"]["AllowedValues"]:
            Settings(assign_public_ip=flag, capacity_provider=provider)
    grace = parameters["GracePeriodSeconds"]
    Settings(grace_period_seconds=grace["MinValue"])
    Settings(grace_period_seconds=grace["MaxValue"])


def test_agent_container_sets_every_required_agent_setting() -> None:
    agent = _env_names(_agent_settings())
    environment, secrets = _container_env()
    assert not set(environment) & set(secrets)
    unknown = (set(environment) | set(secrets)) - set(agent)
    assert not unknown, f"the agent task sets {sorted(unknown)}, which AgentSettings does not read"
    required = {name for name, field in agent.items() if _agent_settings().model_fields[field].is_required()}
    missing = required - set(environment) - set(secrets) - {LAUNCHED_FOR_ROOM_ENV}
    assert not missing, f"the agent task leaves required {sorted(missing)} unset"


def test_agent_secrets_never_travel_as_plain_environment() -> None:
    model = _agent_settings()
    agent = _env_names(model)
    environment, secrets = _container_env()
    secret_settings = {
        name
        for name, field in agent.items()
        if (model.model_fields[field].description or "").startswith("secret:")
    }
    assert secret_settings, "AgentSettings marks its secrets with 'secret:'"
    assert not secret_settings & set(environment)
    assert set(secrets) <= secret_settings


def test_agent_stop_and_drain_fit_fargate() -> None:
    environment, _ = _container_env()
    container = cfn.agent_container()
    assert environment["STOP_TIMEOUT_SECONDS"] == str(container["StopTimeout"])
    assert environment["DRAIN_TIMEOUT_SECONDS"] == ref("DrainTimeoutSeconds")
    drain = cfn.template()["Parameters"]["DrainTimeoutSeconds"]
    module = sys.modules[_agent_settings().__module__]
    assert drain["MaxValue"] + module.JOB_SHUTDOWN_SECONDS < container["StopTimeout"]
    assert drain["Default"] <= drain["MaxValue"]
    assert environment["HEALTH_PORT"] == "8081"
    assert container["HealthCheck"]["Command"] == ["CMD", "python", "-m", "agent_worker.healthcheck"]


def test_functions_and_agent_share_the_same_values() -> None:
    environment, _ = _container_env()
    for function in cfn.functions().values():
        for name in SHARED_WITH_AGENT:
            assert function.environment[name] == environment[name], name
