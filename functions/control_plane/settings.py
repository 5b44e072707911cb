"""Settings from environment variables, validated once per cold start.

Secrets are never settings: only the ARN of the Secrets Manager secret is, and the value is
fetched (and cached) by the LiveKit adapter when first needed.

Read with plain pydantic, as pydantic-settings would (each field from the variable of its name,
in any case; values passed in win): importing pydantic-settings cost every function ~50 ms of
CPU per cold start (bench/cold_start.py), and the Lambda package no longer carries it.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from control_plane.launch_limit import LaunchLimits
from control_plane.pool import PoolPolicy, parse_schedule
from control_plane.reconcile import Policy
from control_plane.room import JOIN_RESERVATION_SECONDS
from control_plane.shards import ATTENTION_SHARDS
from control_plane.sweeper.plan import SweepPolicy

# The largest webhook body accepted; above it the answer is 413, which LiveKit never retries.
# LiveKit's default limits (livekit/livekit pkg/config/config.go) allow 512 KiB of room
# metadata, 512 KiB of participant metadata and 64 KiB of attributes, and a participant event
# carries both the room and the participant: 1088 KiB of text set by apps, which protojson
# escaping grows further (metadata is usually JSON, and each quote becomes \"). 2 MiB keeps all
# of that with room to spare. It also fits the platform: API Gateway HTTP APIs take 10 MB, and
# base64-encode this content type into the event (2 MiB -> 2.7 MiB), under Lambda's 6 MB limit
# for a synchronous request. A body is parsed only after its token and hash check out.
MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
TASK_STARTED_BY = "livekit-agent-lifecycle"
METRICS_NAMESPACE = "LiveKitAgentLifecycle"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    grace_period_seconds: int = Field(
        60, ge=0, le=900, description="Agent stays this long after the last human"
    )
    agent_name: str = Field("voice-agent", min_length=1, description="livekit-agents worker agent_name")
    table_name: str = Field(
        "livekit-agent-lifecycle", description="DynamoDB table for rooms, workers, dedupe"
    )
    timer_queue_url: str = Field("", description="SQS queue for grace timers and worker-ready signals")
    ecs_cluster: str = Field("", description="ECS cluster that runs agent worker tasks")
    task_definition: str = Field("", description="Task definition family:revision or ARN of the agent worker")
    agent_container_name: str = Field("agent", description="Container name in the task definition")
    subnets: str = Field("", description="Comma-separated subnet ids for Fargate tasks")
    security_groups: str = Field("", description="Comma-separated security group ids for Fargate tasks")
    capacity_provider: str = Field("FARGATE", description="FARGATE or FARGATE_SPOT")
    assign_public_ip: bool = Field(False, description="Give tasks a public IP (public subnets without NAT)")
    livekit_url: str = Field("", description="LiveKit server URL, e.g. wss://example.livekit.cloud")
    livekit_secret_arn: str = Field("", description="Secrets Manager ARN holding {api_key, api_secret}")
    agent_task_role_id: str = Field(
        "", description="RoleId of the agent task role: keys worker items and checks timer-queue senders"
    )
    claim_lease_seconds: float = Field(
        30.0, gt=0, description="Age after which an unfinished launch/dispatch is retried"
    )
    worker_stale_seconds: float = Field(
        45.0, gt=0, description="A worker heartbeat older than this is not ready"
    )
    history_ttl_seconds: int = Field(7 * 24 * 3600, gt=0, description="How long closed rooms stay readable")
    event_dedupe_ttl_seconds: int = Field(24 * 3600, gt=0, description="How long webhook ids are remembered")
    room_departure_margin_seconds: int = Field(
        10, ge=0, description="Extra seconds on departure_timeout over grace"
    )
    agent_ttl_seconds: int = Field(
        300,
        gt=0,
        description="Our dispatch in an untracked room with no humans is deleted after this idle time",
    )
    max_agent_age_seconds: int = Field(
        4 * 3600, gt=0, description="Agent tasks running longer are stopped by the sweeper (logged, counted)"
    )
    worker_start_timeout_seconds: int = Field(
        300, gt=0, description="A task with no ready worker this long after it started is stopped"
    )
    warm_tasks: int = Field(
        0, ge=0, description="Idle ready workers kept for instant joins (replenished as rooms take them)"
    )
    slots_per_task: int = Field(
        1, ge=1, description="Rooms one worker task serves (the agent container's SLOTS_PER_TASK)"
    )
    jobs_per_task: int = Field(
        1, ge=1, description="Rooms a task serves in its life before it is recycled (fresh process per room)"
    )
    max_tasks: int = Field(
        100, ge=1, description="Hard cap on agent tasks; rooms over it wait (PoolExhausted, join API 429)"
    )
    warm_adaptive: bool = Field(
        False, description="Size the warm pool from the arrival rate and the measured cold start"
    )
    warm_target_wait_share: float = Field(
        0.05, gt=0, lt=1, description="Adaptive pool: share of first joins allowed to wait for a cold start"
    )
    fargate_launch_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of the account's Fargate launch rate (100 burst, 20/s) and RunTask rate our "
        "launch limiter may use",
    )
    warm_schedule: str = Field(
        "", description="Time-of-day warm floors, UTC: '08:00-18:00=4,18:00-22:00=2' (empty: none)"
    )
    crash_loop_limit: int = Field(
        3, ge=1, description="Agent crashes within the crash window that mark a room failed"
    )
    crash_window_seconds: int = Field(600, gt=0, description="Window in which agent crashes are counted")
    sweep_concurrency: int = Field(50, ge=1, le=500, description="Rooms the sweeper works on at once")
    sweep_safety_margin_seconds: float = Field(
        10.0, ge=0, description="The sweeper starts no new room with less Lambda time left than this"
    )
    sweep_audit_period_seconds: int = Field(
        7200,
        ge=60,
        description="Every room's dispatches are audited once per this period, a share each sweep",
    )
    sweep_groups: int = Field(
        1,
        ge=1,
        le=ATTENTION_SHARDS,
        description="Sweep groups the scheduled sweep fans out to, each owning a share of the "
        "attention index's 16 shards (more at more rooms: docs/architecture.md)",
    )
    sweep_untracked_every: int = Field(
        1,
        ge=1,
        description="The lead sweep group lists every LiveKit room (for rooms nobody tracks) on "
        "one sweep in this many; the others list only their tracked rooms, by name",
    )
    sweep_queue_url: str = Field(
        "", description="SQS queue of the sweep groups (empty: the scheduled invocation runs every group)"
    )
    livekit_api_rate: float = Field(
        8.0,
        ge=0,
        description="LiveKit calls per second the sweep may make (0: unlimited); LiveKit Cloud allows "
        "a project 1,000 a minute by default, shared with webhooks and the API",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, values: Any) -> Any:
        """Each unset field from the environment variable of its name, matched in any case."""
        environment = {name.lower(): value for name, value in os.environ.items()}
        read = {name: environment[name] for name in cls.model_fields if name in environment}
        return {**read, **values} if isinstance(values, dict) else values

    @field_validator("warm_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("capacity_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in ("FARGATE", "FARGATE_SPOT"):
            raise ValueError("capacity_provider must be FARGATE or FARGATE_SPOT")
        return value

    @property
    def subnet_ids(self) -> list[str]:
        return [part.strip() for part in self.subnets.split(",") if part.strip()]

    @property
    def security_group_ids(self) -> list[str]:
        return [part.strip() for part in self.security_groups.split(",") if part.strip()]

    @property
    def departure_timeout(self) -> int:
        """What rooms we create get, so LiveKit does not close them before the longest deadline
        the control plane may keep: a human handed a join token who connects and leaves at once
        keeps the agent until the reservation's end plus grace (``reconcile._grace_deadline``),
        while LiveKit counts ``departure_timeout`` from that leave."""
        return JOIN_RESERVATION_SECONDS + self.grace_period_seconds + self.room_departure_margin_seconds

    @cached_property
    def sweep_policy(self) -> SweepPolicy:
        return SweepPolicy(
            agent_name=self.agent_name,
            grace_seconds=self.grace_period_seconds,
            agent_ttl_seconds=self.agent_ttl_seconds,
            settle_seconds=self.claim_lease_seconds,
            worker_stale_seconds=self.worker_stale_seconds,
            worker_start_timeout_seconds=self.worker_start_timeout_seconds,
            max_agent_age_seconds=self.max_agent_age_seconds,
            concurrency=self.sweep_concurrency,
            safety_margin_seconds=self.sweep_safety_margin_seconds,
            audit_period_seconds=self.sweep_audit_period_seconds,
            livekit_api_rate=self.livekit_api_rate,
        )

    @cached_property
    def policy(self) -> Policy:
        return Policy(
            grace_seconds=self.grace_period_seconds,
            agent_name=self.agent_name,
            claim_lease_seconds=self.claim_lease_seconds,
            history_ttl_seconds=self.history_ttl_seconds,
            worker_stale_seconds=self.worker_stale_seconds,
            crash_loop_limit=self.crash_loop_limit,
            crash_window_seconds=self.crash_window_seconds,
        )

    @cached_property
    def pool_policy(self) -> PoolPolicy:
        return PoolPolicy(
            warm_tasks=self.warm_tasks,
            slots_per_task=self.slots_per_task,
            jobs_per_task=self.jobs_per_task,
            max_tasks=self.max_tasks,
            adaptive=self.warm_adaptive,
            target_wait_share=self.warm_target_wait_share,
            schedule=parse_schedule(self.warm_schedule),
            worker_stale_seconds=self.worker_stale_seconds,
            start_timeout_seconds=self.worker_start_timeout_seconds,
        )

    @property
    def launch_limits(self) -> LaunchLimits:
        return LaunchLimits(share=self.fargate_launch_share)
