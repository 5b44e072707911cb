"""Process entry point: ``python -m agent_worker``. Exit code 0 after a drain, 1 on failure."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import boto3

from agent_worker.clock import SystemClock
from agent_worker.ecs_metadata import resolve_task_arn
from agent_worker.job_budget import JobBudget
from agent_worker.lifecycle import WorkerLifecycle
from agent_worker.logs import configure_logging
from agent_worker.registry import DynamoWorkerRecord, SqsReadySignal
from agent_worker.runtime import WorkerRuntime
from agent_worker.server import LiveKitWorker, build_server
from agent_worker.settings import AgentSettings, load_settings
from control_plane.log_rate_limit import RateLimitedHandler

log = logging.getLogger("agent_worker")

LOG_FLUSH_SECONDS = 5.0


async def serve(settings: AgentSettings, log_handler: RateLimitedHandler) -> int:
    task_arn = await resolve_task_arn(
        configured=settings.task_arn, metadata_uri=settings.ecs_container_metadata_uri_v4
    )
    record = DynamoWorkerRecord(
        boto3.client("dynamodb"),
        settings.table_name,
        task_arn=task_arn,
        task_role_id=settings.agent_task_role_id,
        capacity=settings.slots_per_task,
        launched_for=settings.launched_for_room,
    )
    log.info(
        "worker starting",
        extra={
            "task_arn": task_arn,
            "record_key": record.key,
            "agent_name": settings.agent_name,
            "slots": settings.slots_per_task,
            "jobs_per_task": settings.jobs_per_task,
            "launched_for": settings.launched_for_room,
            "job_grace_seconds": settings.job_grace_seconds,
            "llm": f"{settings.llm_provider.value}:{settings.llm_model}",
        },
    )
    clock = SystemClock()
    budget = JobBudget(settings.jobs_per_task)
    runtime = WorkerRuntime(
        worker=LiveKitWorker(build_server(settings, budget, task_arn)),
        record=record,
        ready_signal=SqsReadySignal(
            boto3.client("sqs"), settings.timer_queue_url, task_arn=task_arn, room=settings.launched_for_room
        ),
        lifecycle=WorkerLifecycle(
            clock=clock,
            unreachable_limit=settings.livekit_unreachable_exit_seconds,
            drain_timeout=settings.drain_timeout_seconds,
        ),
        clock=clock,
        heartbeat_seconds=settings.heartbeat_seconds,
        budget=budget,
    )
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, runtime.terminate)
    flusher = asyncio.create_task(_flush_logs_periodically(log_handler))
    try:
        return await runtime.run()
    finally:
        flusher.cancel()


async def _flush_logs_periodically(handler: RateLimitedHandler) -> None:
    """Repeat counts and drop summaries are written even when no new line comes to trigger them."""
    while True:
        await asyncio.sleep(LOG_FLUSH_SECONDS)
        handler.flush()


def main() -> None:
    settings = load_settings()
    log_handler = configure_logging(settings.log_level, settings.log_rate_limit)
    try:
        code = asyncio.run(serve(settings, log_handler))
    except Exception:
        log.exception("worker failed")
        code = 1
    finally:
        log_handler.close()
    sys.exit(code)
