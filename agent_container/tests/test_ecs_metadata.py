"""The task ARN from the ECS task metadata endpoint, served on loopback as ECS does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from agent_worker.ecs_metadata import TaskArnUnknown, fetch_task_arn, resolve_task_arn

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/agents/0123456789abcdef"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def with_metadata_endpoint(handler: Handler, test: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v4/container-id/task", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            await test(f"http://127.0.0.1:{port}/v4/container-id")
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_the_task_arn_is_read_from_the_task_metadata() -> None:
    async def task(_: web.Request) -> web.Response:
        return web.json_response({"Cluster": "agents", "TaskARN": TASK_ARN, "Family": "voice-agent"})

    async def test(uri: str) -> None:
        assert await resolve_task_arn(configured=None, metadata_uri=uri) == TASK_ARN

    with_metadata_endpoint(task, test)


def test_an_endpoint_not_ready_yet_is_retried() -> None:
    calls = 0

    async def task(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=500)
        return web.json_response({"TaskARN": TASK_ARN})

    async def test(uri: str) -> None:
        assert await fetch_task_arn(uri, retry_delay=0) == TASK_ARN

    with_metadata_endpoint(task, test)
    assert calls == 2


def test_metadata_without_a_task_arn_is_an_error_not_a_guess() -> None:
    async def task(_: web.Request) -> web.Response:
        return web.json_response({"Cluster": "agents"})

    async def test(uri: str) -> None:
        with pytest.raises(TaskArnUnknown):
            await fetch_task_arn(uri, retry_delay=0)

    with_metadata_endpoint(task, test)


def test_outside_ecs_the_configured_task_arn_is_used_and_required() -> None:
    assert asyncio.run(resolve_task_arn(configured="local-dev", metadata_uri=None)) == "local-dev"
    with pytest.raises(TaskArnUnknown, match="set TASK_ARN"):
        asyncio.run(resolve_task_arn(configured=None, metadata_uri=None))
