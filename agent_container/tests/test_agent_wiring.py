"""The livekit-agents and Deepgram wiring, built offline with dummy keys (nothing connects)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from fakes import ACCEPTED, DECLINED, JobOffer
from fakes import agent_settings as settings
from livekit.agents import AgentServer, AgentSession, AssignmentTimeoutError, JobRequest, inference
from livekit.plugins import deepgram, openai
from livekit.protocol import agent

from agent_worker.healthcheck import healthy
from agent_worker.job_budget import JobBudget
from agent_worker.server import LiveKitWorker, accept_jobs, build_server, slot_load
from agent_worker.session import ROOM_OPTIONS, build_llm, build_session
from agent_worker.settings import AgentSettings, LLMProvider
from control_plane.worker_protocol import agent_identity

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/agents/feedface"


def build_session_offline(agent_settings: AgentSettings) -> AgentSession[None]:
    async def build() -> AgentSession[None]:
        return build_session(agent_settings)

    return asyncio.run(build())


def test_each_job_gets_deepgram_speech_both_ways_and_the_configured_llm() -> None:
    session = build_session_offline(
        settings(
            deepgram_stt_model="nova-3-medical", deepgram_tts_model="aura-2-thalia-en", agent_language="en-GB"
        )
    )

    assert isinstance(session.stt, deepgram.STT)
    assert session.stt.model == "nova-3-medical"
    assert isinstance(session.tts, deepgram.TTS)
    assert session.tts.model == "aura-2-thalia-en"
    assert isinstance(session.llm, openai.LLM)
    assert session.llm.model == "gpt-4.1-mini"


def test_deepgram_speech_to_text_can_be_pointed_at_another_endpoint() -> None:
    """The e2e tier's provider failure uses the real plugin against an endpoint that refuses."""
    session = build_session_offline(settings(deepgram_stt_url="ws://10.99.0.1:9/v1/listen"))

    assert isinstance(session.stt, deepgram.STT)
    assert session.stt._opts.endpoint_url == "ws://10.99.0.1:9/v1/listen"
    assert build_session_offline(settings()).stt._opts.endpoint_url.startswith("https://api.deepgram.com")


def test_an_openai_compatible_endpoint_can_stand_in_for_openai() -> None:
    llm = build_llm(settings(llm_base_url="https://llm.internal.example/v1", llm_model="llama-3.3-70b"))

    assert isinstance(llm, openai.LLM)
    assert llm.model == "llama-3.3-70b"
    assert str(llm._client.base_url).startswith("https://llm.internal.example/v1")


def test_livekit_inference_is_the_other_llm_choice() -> None:
    llm = build_llm(
        settings(llm_provider=LLMProvider.LIVEKIT, llm_model="openai/gpt-4.1-mini", llm_api_key=None)
    )

    assert isinstance(llm, inference.LLM)
    assert llm.model == "openai/gpt-4.1-mini"


def test_the_session_outlives_the_person_it_listens_to() -> None:
    assert ROOM_OPTIONS.close_on_disconnect is False


def test_the_worker_registers_under_the_agent_name_and_drains_before_fargate_kills_it() -> None:
    server = build_server(
        settings(agent_name="support-agent", drain_timeout_seconds=80), JobBudget(1), TASK_ARN
    )

    assert server._agent_name == "support-agent"
    assert server._drain_timeout == 80
    assert server._max_retry * 10 >= 300  # livekit-agents keeps retrying while we still wait


@pytest.mark.parametrize(("slots", "running", "load"), [(1, 0, 0.0), (1, 1, 1.0), (4, 1, 0.25), (4, 4, 1.0)])
def test_load_is_the_share_of_slots_in_use_so_livekit_stops_sending_jobs_when_full(
    slots: int, running: int, load: float
) -> None:
    server = SimpleNamespace(active_jobs=[object()] * running)

    assert slot_load(slots, JobBudget(10))(server) == load  # type: ignore[arg-type]


def test_load_is_full_once_the_worker_has_taken_its_last_job_so_livekit_sends_it_no_more() -> None:
    budget = JobBudget(1)
    budget.take()
    budget.settled(started=True)
    server = SimpleNamespace(active_jobs=[])  # its one job has even ended: it is about to go

    assert slot_load(4, budget)(server) == 1.0  # type: ignore[arg-type]


def offer(on_request: Callable[[JobRequest], Awaitable[None]], room: str, **kwargs: Any) -> JobOffer:
    job = JobOffer(room, **kwargs)
    asyncio.run(on_request(job))  # type: ignore[arg-type]
    return job


def test_a_task_launched_for_one_room_takes_another_rooms_job() -> None:
    """Workers are fungible: the control plane reserved a slot on this worker for room B."""
    server = build_server(settings(launched_for_room="room-a"), JobBudget(1), TASK_ARN)

    assert offer(server._request_fnc, "room-b").answer == ACCEPTED  # type: ignore[arg-type]


def test_a_job_is_accepted_as_this_task_so_livekit_can_vouch_for_its_report() -> None:
    """LiveKit records the identity a worker accepts with on the job; the control plane
    believes a ``JobStarted`` only when the job's identity names the reporting task."""
    job = offer(accept_jobs(JobBudget(1), TASK_ARN), "room-a")

    assert job.identity == agent_identity(job.id, TASK_ARN) == f"agent-{job.id}@feedface"


def test_after_jobs_per_task_jobs_the_next_is_declined_for_another_worker_not_ended() -> None:
    on_request = accept_jobs(JobBudget(2), TASK_ARN)

    answers = [offer(on_request, room).answer for room in ("room-a", "room-b", "room-c")]

    assert answers == [ACCEPTED, ACCEPTED, DECLINED]


def test_two_offers_at_once_cannot_both_take_the_last_job() -> None:
    on_request = accept_jobs(JobBudget(1), TASK_ARN)

    async def both() -> tuple[JobOffer, JobOffer]:
        assigned = asyncio.Event()
        first = JobOffer("room-a", assigned=assigned.wait)
        second = JobOffer("room-b")
        taking = asyncio.create_task(on_request(first))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # accepted, waiting for LiveKit's assignment
        await on_request(second)  # type: ignore[arg-type]
        assigned.set()
        await taking
        return first, second

    first, second = asyncio.run(both())
    assert (first.answer, second.answer) == (ACCEPTED, DECLINED)


def test_a_job_livekit_never_assigns_is_given_back() -> None:
    budget = JobBudget(1)
    on_request = accept_jobs(budget, TASK_ARN)

    async def never_assigned() -> None:
        raise AssignmentTimeoutError()

    with pytest.raises(AssignmentTimeoutError):  # livekit-agents logs it and moves on
        offer(on_request, "room-a", assigned=never_assigned)

    assert not budget.spent
    assert offer(on_request, "room-b").answer == ACCEPTED


def test_a_worker_that_has_not_registered_is_not_connected_and_has_no_jobs() -> None:
    worker = LiveKitWorker(build_server(settings(), JobBudget(1), TASK_ARN))

    assert not worker.connected()
    assert worker.jobs() == {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_health_check_passes_while_the_worker_serves_its_health_port() -> None:
    port = free_port()
    server = AgentServer(port=port, num_idle_processes=0, load_fnc=slot_load(1, JobBudget(1)))
    server.rtc_session(lambda ctx: asyncio.sleep(0), agent_name="voice-agent")

    async def main() -> tuple[bool, bool]:
        started = asyncio.Event()
        server.on("worker_started", started.set)
        serving = asyncio.create_task(server.run(devmode=False, unregistered=True))
        await asyncio.wait_for(started.wait(), timeout=30)
        while_serving = await asyncio.to_thread(healthy, port)
        await server.aclose()
        await serving
        return while_serving, await asyncio.to_thread(healthy, port)

    while_serving, after_close = asyncio.run(main())
    assert while_serving
    assert not after_close


def test_the_worker_reports_registration_and_a_lost_connection_to_livekit() -> None:
    """Against a loopback stand-in for LiveKit's agent websocket: the watchdog's input is real."""
    registrations: list[str] = []
    open_sockets: list[web.WebSocketResponse] = []

    async def agent_socket(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        open_sockets.append(socket_)
        register = agent.WorkerMessage()
        register.ParseFromString(await socket_.receive_bytes())
        registrations.append(register.register.agent_name)
        reply = agent.ServerMessage(register=agent.RegisterWorkerResponse(worker_id="AW_test"))
        await socket_.send_bytes(reply.SerializeToString())
        async for _ in socket_:  # status updates until LiveKit "goes away"
            pass
        return socket_

    async def main() -> tuple[bool, bool, bool]:
        app = web.Application()
        app.router.add_get("/agent", agent_socket)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]

        server = build_server(
            settings(livekit_url=f"ws://127.0.0.1:{port}", health_port=free_port()), JobBudget(1), TASK_ARN
        )
        server.update_options(num_idle_processes=0)
        worker = LiveKitWorker(server)
        registered = asyncio.Event()
        worker.on_registered(registered.set)
        serving = asyncio.create_task(worker.run())
        await asyncio.wait_for(registered.wait(), timeout=30)
        connected_when_registered = worker.connected()

        await site.stop()  # LiveKit becomes unreachable: no new connections, the open one dropped
        for open_socket in open_sockets:
            await open_socket.close()
        for _ in range(100):
            if not worker.connected():
                break
            await asyncio.sleep(0.05)
        connected_after_loss = worker.connected()
        await worker.aclose()
        await asyncio.gather(serving, return_exceptions=True)
        await runner.cleanup()
        return connected_when_registered, connected_after_loss, serving.done()

    connected_when_registered, connected_after_loss, stopped = asyncio.run(main())
    assert registrations == ["voice-agent"]
    assert connected_when_registered
    assert not connected_after_loss
    assert stopped
