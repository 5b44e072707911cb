"""The worker API local agent workers use: register, long-poll for assignments and terminations,
report a job ended, unregister."""

from __future__ import annotations

import threading
import time

import pytest

from local.livekit_sim import LiveKitSimulator, SimulatorClient, SimulatorError
from local.livekit_sim.models import JobAssignment, WorkerMessage
from tests.livekit_sim.conftest import AGENT
from tests.livekit_sim.sink import WebhookSink


def assign(
    sim: LiveKitSimulator, client: SimulatorClient, room: str = "standup"
) -> tuple[str, JobAssignment]:
    worker = client.register_worker(AGENT)
    client.join(room, "alice")
    sim.world.create_dispatch(room, AGENT, '{"lang": "en"}')
    [assignment] = client.messages(worker)
    assert isinstance(assignment, JobAssignment)
    return worker, assignment


@pytest.mark.parametrize(("reported", "recorded"), [("success", "JS_SUCCESS"), ("failed", "JS_FAILED")])
def test_a_worker_reports_its_job_ended_and_the_agent_leaves(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink, reported: str, recorded: str
) -> None:
    worker, job = assign(sim, client)

    ended = client.end_job(worker, job.job_id, reported)

    assert ended.status == recorded
    [room] = client.state().rooms
    assert [p.identity for p in room.participants] == ["alice"]
    assert [(j.job_id, j.status, j.worker_id) for j in room.dispatches[-1].jobs] == [
        (job.job_id, recorded, None)
    ]
    assert sink.events(4)[3] == ("participant_left", f"agent-{job.job_id}")
    assert client.messages(worker) == [], "a job the worker ended is not terminated again"


def test_unregistering_a_worker_fails_its_jobs(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    worker, job = assign(sim, client)

    assert client.unregister_worker(worker) == [job.job_id]

    state = client.state()
    assert state.workers == [] and [p.identity for p in state.rooms[0].participants] == ["alice"]
    assert state.rooms[0].dispatches[-1].jobs[0].status == "JS_FAILED"
    with pytest.raises(SimulatorError) as gone:
        client.messages(worker)
    assert gone.value.status == 404 and worker in gone.value.message


def test_a_long_poll_answers_as_soon_as_a_job_is_assigned(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    worker = client.register_worker(AGENT)
    got: list[WorkerMessage] = []
    poll = threading.Thread(target=lambda: got.extend(client.messages(worker, wait=10)))
    started = time.monotonic()
    poll.start()
    time.sleep(0.1)

    sim.world.create_dispatch("standup", AGENT, "")
    poll.join(timeout=5)

    assert [m.type for m in got] == ["assignment"]
    assert time.monotonic() - started < 2


def test_a_long_poll_with_nothing_to_say_ends_after_its_wait(client: SimulatorClient) -> None:
    worker = client.register_worker(AGENT)
    started = time.monotonic()

    assert client.messages(worker, wait=0.2) == []
    assert 0.2 <= time.monotonic() - started < 2


def test_a_job_another_worker_runs_cannot_be_ended(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    _, job = assign(sim, client)
    other = client.register_worker(AGENT)

    with pytest.raises(SimulatorError) as refused:
        client.end_job(other, job.job_id)

    assert refused.value.status == 404 and job.job_id in refused.value.message
