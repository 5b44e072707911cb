"""Settings from environment variables; the API keys arrive as env vars from ECS ``secrets``.

Keys are ``SecretStr``: they never appear in a repr, a log line or a validation error.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.worker_protocol import LAUNCHED_FOR_ROOM_ENV

JOB_SHUTDOWN_SECONDS = 10
"""How long a job process gets to close once the worker shuts down (AgentServer's
``shutdown_process_timeout``); the drain plus this must fit in the task's ``stopTimeout``."""

FARGATE_MAX_STOP_TIMEOUT = 120


class LLMProvider(StrEnum):
    OPENAI = "openai"
    """OpenAI, or any OpenAI-compatible endpoint given by ``LLM_BASE_URL``; key ``LLM_API_KEY``."""
    LIVEKIT = "livekit"
    """LiveKit Inference (LiveKit Cloud only), authenticated with the LiveKit API key."""


class AgentPipeline(StrEnum):
    VOICE = "voice"
    """Production: Deepgram speech-to-text and text-to-speech around the configured LLM."""
    ECHO = "echo"
    """No provider and no key: the agent plays back what the humans say (the e2e tier, ``make dev``)."""


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    agent_name: str = Field("voice-agent", min_length=1, description="agent_name the worker registers")
    livekit_url: str = Field(min_length=1, description="LiveKit server URL, e.g. wss://x.livekit.cloud")
    livekit_api_key: SecretStr = Field(
        description="secret: the agent's own LiveKit API key, never the one the webhook accepts"
    )
    livekit_api_secret: SecretStr = Field(description="secret: that LiveKit key's secret")
    agent_pipeline: AgentPipeline = Field(
        AgentPipeline.VOICE, description="voice (Deepgram + LLM) or echo (keyless, for tests and make dev)"
    )
    deepgram_api_key: SecretStr | None = Field(None, description="secret: Deepgram API key (STT and TTS)")
    deepgram_stt_url: str | None = Field(
        None, description="Deepgram's listen endpoint instead of the public one"
    )
    deepgram_stt_model: str = Field("nova-3", description="Deepgram speech-to-text model")
    deepgram_tts_model: str = Field("aura-2-andromeda-en", description="Deepgram text-to-speech voice")
    agent_language: str = Field("en-US", description="Language the agent listens for")
    llm_provider: LLMProvider = Field(LLMProvider.OPENAI, description="openai or livekit")
    llm_model: str = Field("gpt-4.1-mini", description="Model name; provider/model for livekit")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint instead of OpenAI")
    llm_api_key: SecretStr | None = Field(None, description="secret: key for the openai provider")
    agent_instructions: str = Field(
        "You are a friendly voice assistant. Answer briefly, in plain spoken sentences.",
        description="System prompt of the agent",
    )
    grace_period_seconds: int = Field(
        60, ge=0, le=900, description="The control plane's grace period (the same template parameter)"
    )
    grace_margin_seconds: int = Field(
        30, ge=0, le=600, description="The job's own grace outlasts the control plane's by this much"
    )
    max_agent_age_seconds: int = Field(4 * 3600, gt=0, description="Job ends after this long, humans or not")
    slots_per_task: int = Field(1, ge=1, description="Jobs (rooms) one worker serves at once")
    jobs_per_task: int = Field(
        1, ge=1, description="Jobs one worker takes in its life, then drains and exits (the pool replaces it)"
    )
    heartbeat_seconds: float = Field(15.0, gt=0, description="Period of the worker record heartbeat")
    drain_timeout_seconds: int = Field(90, gt=0, description="Longest wait for jobs after SIGTERM")
    stop_timeout_seconds: int = Field(
        FARGATE_MAX_STOP_TIMEOUT, gt=0, le=FARGATE_MAX_STOP_TIMEOUT, description="The task's stopTimeout"
    )
    livekit_unreachable_exit_seconds: float = Field(300.0, gt=0, description="Exit 1 after this long offline")
    log_rate_limit: float = Field(400.0, gt=0, description="Log lines per second before dropping")
    log_level: str = Field("INFO", description="Root log level")
    health_port: int = Field(8081, gt=0, lt=65536, description="Worker HTTP health port (GET /)")
    table_name: str = Field("livekit-agent-lifecycle", min_length=1, description="DynamoDB table")
    timer_queue_url: str = Field(min_length=1, description="SQS queue for the worker-ready signal")
    launched_for_room: str | None = Field(
        None,
        validation_alias=LAUNCHED_FOR_ROOM_ENV,
        description="Set by RunTask: the room the task was launched for (a hint; it takes any room)",
    )
    agent_task_role_id: str = Field(
        description="RoleId of the task role (AGENT_TASK_ROLE_ID): part of the record's key; empty only "
        "outside ECS (the local stack, where no role keys the records)"
    )
    task_arn: str | None = Field(None, description="Only outside ECS: stands in for the metadata endpoint")
    ecs_container_metadata_uri_v4: str | None = Field(None, description="Set by ECS")

    @property
    def job_grace_seconds(self) -> int:
        """The job's own grace: a failsafe, not the primary. It starts at the RTC disconnect,
        before the control plane has even seen the webhook, so at the same length it would end
        first and a human returning near the end would find the room ``active`` but no agent."""
        return self.grace_period_seconds + self.grace_margin_seconds

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.drain_timeout_seconds + JOB_SHUTDOWN_SECONDS >= self.stop_timeout_seconds:
            raise ValueError(
                f"DRAIN_TIMEOUT_SECONDS + {JOB_SHUTDOWN_SECONDS}s job shutdown must stay below"
                f" STOP_TIMEOUT_SECONDS ({self.stop_timeout_seconds}), or ECS kills the task mid-drain"
            )
        if not self.agent_task_role_id and self.ecs_container_metadata_uri_v4:
            raise ValueError("agent_task_role_id: AGENT_TASK_ROLE_ID must be the task role's RoleId in ECS")
        if self.agent_pipeline is AgentPipeline.VOICE:
            if self.deepgram_api_key is None:
                raise ValueError("AGENT_PIPELINE=voice needs DEEPGRAM_API_KEY")
            if self.llm_provider is LLMProvider.OPENAI and self.llm_api_key is None:
                raise ValueError("LLM_PROVIDER=openai needs LLM_API_KEY")
        return self


@cache
def load_settings() -> AgentSettings:
    """Read once per process: the worker and each job process (they share the environment)."""
    return AgentSettings()
