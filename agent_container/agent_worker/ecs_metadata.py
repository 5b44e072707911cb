"""The task's own ARN, from the ECS task metadata endpoint (v4): it keys the worker record."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger(__name__)

ATTEMPTS = 3


class TaskArnUnknown(RuntimeError):
    """Neither on ECS (no metadata endpoint) nor given ``TASK_ARN``: the worker cannot report."""


async def fetch_task_arn(metadata_uri: str, *, timeout: float = 2.0, retry_delay: float = 1.0) -> str:
    """``GET ${ECS_CONTAINER_METADATA_URI_V4}/task`` and read ``TaskARN``; retried, it is local."""
    url = metadata_uri.rstrip("/") + "/task"
    last_error: Exception | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for attempt in range(1, ATTEMPTS + 1):
            if last_error is not None:
                await asyncio.sleep(retry_delay)
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    task = await response.json(content_type=None)
                    return str(task["TaskARN"])
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as error:
                last_error = error
                log.warning("task metadata not available", extra={"attempt": attempt, "error": str(error)})
    raise TaskArnUnknown(f"ECS task metadata at {url} gave no TaskARN") from last_error


async def resolve_task_arn(*, configured: str | None, metadata_uri: str | None) -> str:
    if configured:
        return configured
    if metadata_uri:
        return await fetch_task_arn(metadata_uri)
    raise TaskArnUnknown("not running on ECS (no ECS_CONTAINER_METADATA_URI_V4): set TASK_ARN")
