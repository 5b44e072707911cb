"""Settings from the environment, as ECS sets them (secrets included)."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from agent_worker.settings import AgentPipeline, AgentSettings, LLMProvider
from control_plane.worker_protocol import TASK_ROLE_ID_ENV

REQUIRED = {
    "LIVEKIT_URL": "wss://example.livekit.cloud",
    "LIVEKIT_API_KEY": "APIkey-not-secret-looking",
    "LIVEKIT_API_SECRET": "lk-secret-value-123",
    "DEEPGRAM_API_KEY": "dg-secret-value-456",
    "LLM_API_KEY": "sk-secret-value-789",
    "TIMER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/timers",
    "AGENT_TASK_ROLE_ID": "AROAEXAMPLEAGENTROLE1",
}
SECRETS = ("lk-secret-value-123", "dg-secret-value-456", "sk-secret-value-789")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults_match_the_control_plane_and_fargate(environment: pytest.MonkeyPatch) -> None:
    settings = AgentSettings()

    assert settings.agent_name == "voice-agent"
    assert settings.grace_period_seconds == 60
    assert settings.slots_per_task == 1
    assert settings.jobs_per_task == 1, "a fresh process for each room"
    assert settings.drain_timeout_seconds < settings.stop_timeout_seconds <= 120
    assert settings.livekit_unreachable_exit_seconds == 300
    assert settings.log_rate_limit == 400
    assert settings.health_port == 8081
    assert settings.llm_provider is LLMProvider.OPENAI
    assert settings.launched_for_room is None
    assert settings.agent_pipeline is AgentPipeline.VOICE, "production speaks through the providers"


def test_jobs_per_task_comes_from_the_same_variable_the_control_plane_reads(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("JOBS_PER_TASK", "5")
    assert AgentSettings().jobs_per_task == 5

    environment.setenv("JOBS_PER_TASK", "0")
    with pytest.raises(ValidationError, match="jobs_per_task"):
        AgentSettings()


def test_the_room_a_task_was_launched_for_comes_from_the_runtask_override(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("LAUNCHED_FOR_ROOM", "standup")

    assert AgentSettings().launched_for_room == "standup"


def test_secrets_never_show_in_reprs_dumps_or_logs(
    environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = AgentSettings()
    logging.getLogger("test").warning("settings: %s", settings)

    shown = repr(settings) + str(settings) + settings.model_dump_json() + caplog.text
    assert not [secret for secret in SECRETS if secret in shown]
    assert settings.deepgram_api_key is not None
    assert settings.deepgram_api_key.get_secret_value() == "dg-secret-value-456"


def test_an_invalid_setting_is_reported_without_echoing_secrets(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("SLOTS_PER_TASK", "0")

    with pytest.raises(ValidationError) as raised:
        AgentSettings()

    assert "slots_per_task" in str(raised.value)
    assert not [secret for secret in SECRETS if secret in str(raised.value)]


def test_a_drain_that_cannot_finish_before_ecs_kills_the_task_is_refused(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("DRAIN_TIMEOUT_SECONDS", "115")

    with pytest.raises(ValidationError, match="STOP_TIMEOUT_SECONDS"):
        AgentSettings()


def test_the_openai_provider_needs_its_key_and_livekit_inference_does_not(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.delenv("LLM_API_KEY")
    with pytest.raises(ValidationError, match="LLM_API_KEY"):
        AgentSettings()

    environment.setenv("LLM_PROVIDER", "livekit")
    environment.setenv("LLM_MODEL", "openai/gpt-4.1-mini")
    assert AgentSettings().llm_provider is LLMProvider.LIVEKIT


def test_the_voice_pipeline_needs_the_deepgram_key(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("DEEPGRAM_API_KEY")

    with pytest.raises(ValidationError, match="DEEPGRAM_API_KEY"):
        AgentSettings()


def test_the_echo_pipeline_runs_without_any_provider_key(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("DEEPGRAM_API_KEY")
    environment.delenv("LLM_API_KEY")
    environment.setenv("AGENT_PIPELINE", "echo")

    settings = AgentSettings()

    assert settings.agent_pipeline is AgentPipeline.ECHO
    assert settings.deepgram_api_key is None and settings.llm_api_key is None


def test_an_unknown_pipeline_is_refused(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("AGENT_PIPELINE", "silent")

    with pytest.raises(ValidationError, match="agent_pipeline"):
        AgentSettings()


def test_the_jobs_own_grace_outlasts_the_control_planes_by_a_margin(environment: pytest.MonkeyPatch) -> None:
    """GRACE_PERIOD_SECONDS is the control plane's grace (the template passes the same value);
    the job waits GRACE_MARGIN_SECONDS longer, so the control plane always acts first."""
    environment.setenv("GRACE_PERIOD_SECONDS", "60")
    settings = AgentSettings()
    assert settings.grace_margin_seconds == 30
    assert settings.job_grace_seconds == 90

    environment.setenv("GRACE_MARGIN_SECONDS", "45")
    assert AgentSettings().job_grace_seconds == 105


def test_the_record_key_needs_the_task_role_id(environment: pytest.MonkeyPatch) -> None:
    environment.setenv(TASK_ROLE_ID_ENV, "AROAOTHERROLE")
    assert AgentSettings().agent_task_role_id == "AROAOTHERROLE"

    environment.delenv(TASK_ROLE_ID_ENV)
    with pytest.raises(ValidationError, match="agent_task_role_id"):
        AgentSettings()

    environment.setenv(TASK_ROLE_ID_ENV, "")
    environment.setenv("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/abc")
    with pytest.raises(ValidationError, match="agent_task_role_id"):
        AgentSettings()  # in ECS an empty role id would key records the role may not write

    environment.delenv("ECS_CONTAINER_METADATA_URI_V4")
    assert AgentSettings().agent_task_role_id == "", "outside ECS (the local stack) it may be empty"
