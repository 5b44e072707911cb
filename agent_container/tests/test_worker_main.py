"""The whole worker process as ECS runs it, against a loopback stand-in for LiveKit's agent
websocket and moto: it registers, reports ready, and drains and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator

import boto3
import pytest
from aiohttp import web
from control_plane_view import ControlPlaneView
from livekit.protocol import agent
from moto import mock_aws

from agent_worker.main import serve
from agent_worker.settings import AgentSettings
from control_plane.log_rate_limit import RateLimitedHandler
from control_plane.worker_protocol import TIMER_MESSAGE, WorkerReady, WorkerStatus
from local.fixtures import create_table

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/agents/c0ffee"
ROLE_ID = "AROAEXAMPLEAGENTROLE1"
READY_WITHIN_SECONDS = 60.0


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def fake_livekit_agent_socket(request: web.Request) -> web.WebSocketResponse:
    socket_ = web.WebSocketResponse()
    await socket_.prepare(request)
    await socket_.receive_bytes()  # the worker's registration
    reply = agent.ServerMessage(register=agent.RegisterWorkerResponse(worker_id="AW_main"))
    await socket_.send_bytes(reply.SerializeToString())
    async for _ in socket_:
        pass
    return socket_


def test_the_worker_process_reports_ready_then_drains_and_exits_0_on_sigterm(aws: None) -> None:
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, "lifecycle")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="timers")["QueueUrl"]
    control_plane = ControlPlaneView(dynamodb, "lifecycle", task_role_id=ROLE_ID, task_arn=TASK_ARN)

    async def main() -> int:
        app = web.Application()
        app.router.add_get("/agent", fake_livekit_agent_socket)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        settings = AgentSettings.model_validate(
            {
                "livekit_url": f"ws://127.0.0.1:{runner.addresses[0][1]}",
                "livekit_api_key": "devkey",
                "livekit_api_secret": "devsecret-devsecret-devsecret-00",
                "deepgram_api_key": "dg-dummy",
                "llm_api_key": "sk-dummy",
                "table_name": "lifecycle",
                "timer_queue_url": queue_url,
                "task_arn": TASK_ARN,
                "agent_task_role_id": ROLE_ID,
                "LAUNCHED_FOR_ROOM": "standup",
                "health_port": free_port(),
            }
        )
        worker = asyncio.create_task(serve(settings, RateLimitedHandler(logging.NullHandler())))
        # Bounded, and generous: on 2 busy cores the worker's start alone can take over 10 s.
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        while time.monotonic() < deadline:
            ready = control_plane.get()
            if ready is not None and ready.status is WorkerStatus.READY:
                break
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        code = await asyncio.wait_for(worker, timeout=60)
        await runner.cleanup()
        return code

    assert asyncio.run(main()) == 0

    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [TIMER_MESSAGE.validate_json(m["Body"]) for m in received] == [
        WorkerReady(task_arn=TASK_ARN, room="standup")
    ]
    stopped = control_plane.get()
    assert stopped is not None
    assert stopped.status is WorkerStatus.STOPPED
