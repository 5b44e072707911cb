"""Agent dispatch through the real ``livekit-api`` client: jobs go to registered workers with room
for them or are dropped, and a job's agent is a participant of kind AGENT for as long as it runs."""

from __future__ import annotations

import logging

import pytest
from livekit.api import (
    CreateAgentDispatchRequest,
    CreateRoomRequest,
    DeleteRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
    RoomParticipantIdentity,
    TwirpError,
)
from livekit.protocol.agent import JobStatus
from livekit.protocol.models import ParticipantInfo

from control_plane.worker_protocol import agent_identity
from local.livekit_sim import LiveKitSimulator, SimulatorClient
from local.livekit_sim.models import JobAssignment, JobTermination
from local.livekit_sim.world import NO_WORKER
from tests.livekit_sim.conftest import AGENT, API_KEY, API_SECRET, twirp
from tests.livekit_sim.sink import WebhookSink


def dispatch(sim: LiveKitSimulator, room: str) -> tuple[str, list[str]]:
    """CreateDispatch over Twirp, which answers before any job exists (as LiveKit does), then
    ListDispatch: the dispatch id and its jobs' ids."""
    created = twirp(
        sim,
        lambda api: api.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(room=room, agent_name=AGENT)
        ),
    )
    assert list(created.state.jobs) == []
    listed = twirp(sim, lambda api: api.agent_dispatch.get_dispatch(created.id, room))
    assert listed is not None
    return created.id, [job.id for job in listed.state.jobs]


def participants(sim: LiveKitSimulator, room: str) -> list[tuple[str, int]]:
    listed = twirp(sim, lambda api: api.room.list_participants(ListParticipantsRequest(room=room)))
    return [(p.identity, p.kind) for p in listed.participants]


def test_create_room_sets_its_timeouts_and_reports_room_started(
    sim: LiveKitSimulator, sink: WebhookSink
) -> None:
    twirp(
        sim,
        lambda api: api.room.create_room(
            CreateRoomRequest(name="standup", departure_timeout=75, empty_timeout=600)
        ),
    )

    [room] = twirp(sim, lambda api: api.room.list_rooms(ListRoomsRequest())).rooms
    assert (room.name, room.departure_timeout, room.empty_timeout) == ("standup", 75, 600)
    [started] = sink.wait_for(1)
    assert started.json["event"] == "room_started"
    assert started.json["room"]["departureTimeout"] == 75 and started.json["room"]["sid"] == room.sid


def test_a_dispatch_goes_to_a_registered_worker_and_its_agent_joins(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink
) -> None:
    worker = client.register_worker(AGENT)
    joined = client.join("standup", "alice")

    dispatch_id, [job_id] = dispatch(sim, "standup")

    [assignment] = client.messages(worker)
    assert isinstance(assignment, JobAssignment)
    assert (assignment.job_id, assignment.dispatch_id, assignment.room_sid) == (
        job_id,
        dispatch_id,
        joined.room_sid,
    )
    assert assignment.participant_identity == f"agent-{job_id}"
    assert participants(sim, "standup") == [("alice", 0), (f"agent-{job_id}", ParticipantInfo.AGENT)]
    assert sink.events(3)[2] == ("participant_joined", f"agent-{job_id}")
    assert sink.received[2].json["participant"]["kind"] == "AGENT"
    assert client.state().workers[0].jobs == [job_id]


def test_a_worker_in_a_task_accepts_as_that_task_and_list_dispatch_says_so(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    """As ours answers LiveKit's job offer: the identity names the task, LiveKit records it on
    the job, and the control plane confirms a ``JobStarted`` by it."""
    task_arn = "arn:aws:ecs:us-east-1:123456789012:task/agents/feedface"
    worker = client.register_worker(AGENT, task_arn=task_arn)
    client.join("standup", "alice")

    _, [job_id] = dispatch(sim, "standup")

    identity = agent_identity(job_id, task_arn)
    [assignment] = client.messages(worker)
    assert isinstance(assignment, JobAssignment) and assignment.participant_identity == identity
    listed = twirp(sim, lambda api: api.agent_dispatch.list_dispatch("standup"))
    [ours] = [d for d in listed if d.agent_name == AGENT]  # beside the room's own empty-name dispatch
    assert [(job.id, job.state.participant_identity) for job in ours.state.jobs] == [(job_id, identity)]
    assert participants(sim, "standup") == [("alice", 0), (identity, ParticipantInfo.AGENT)]


def test_a_dispatch_with_no_worker_is_dropped_and_never_gets_a_job(
    sim: LiveKitSimulator, client: SimulatorClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="local.livekit_sim"):
        dispatch_id, jobs = dispatch(sim, "standup")
    client.register_worker(AGENT)

    assert jobs == []
    default, listed = twirp(sim, lambda api: api.agent_dispatch.list_dispatch("standup"))
    assert (default.agent_name, list(default.state.jobs)) == ("", [])  # the room's own, unanswered too
    assert (listed.id, list(listed.state.jobs)) == (dispatch_id, [])
    assert [r.getMessage() for r in caplog.records] == [NO_WORKER, NO_WORKER]
    assert participants(sim, "standup") == []


def test_workers_take_jobs_only_up_to_their_slots(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    small = client.register_worker(AGENT, slots=1)
    big = client.register_worker(AGENT, slots=3)
    client.register_worker("another-agent", slots=5)

    jobs = [dispatch(sim, f"room-{n}")[1] for n in range(5)]

    assert [len(j) for j in jobs] == [1, 1, 1, 1, 0]
    load = {w.worker_id: len(w.jobs) for w in client.state().workers}
    assert (load[small], load[big]) == (1, 3)


def test_delete_dispatch_terminates_the_job_and_its_agent_leaves(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink
) -> None:
    worker = client.register_worker(AGENT)
    client.join("standup", "alice")
    dispatch_id, [job_id] = dispatch(sim, "standup")

    twirp(sim, lambda api: api.agent_dispatch.delete_dispatch(dispatch_id, "standup"))

    assert client.messages(worker)[1] == JobTermination(
        job_id=job_id, room="standup", reason="dispatch deleted"
    )
    assert participants(sim, "standup") == [("alice", 0)]
    assert sink.events(4)[3] == ("participant_left", f"agent-{job_id}")
    assert sink.received[3].json["participant"]["kind"] == "AGENT"
    assert client.state().workers[0].jobs == []
    assert dispatch(sim, "standup")[1], "the freed slot takes the next job"


def test_removing_an_agent_ends_its_job(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    worker = client.register_worker(AGENT)
    _, [job_id] = dispatch(sim, "standup")

    twirp(
        sim,
        lambda api: api.room.remove_participant(
            RoomParticipantIdentity(room="standup", identity=f"agent-{job_id}")
        ),
    )

    assert client.messages(worker)[1] == JobTermination(
        job_id=job_id, room="standup", reason="agent left the room"
    )
    _, listed = twirp(sim, lambda api: api.agent_dispatch.list_dispatch("standup"))
    assert [job.state.status for job in listed.state.jobs] == [JobStatus.JS_SUCCESS]


def test_delete_room_disconnects_everyone_then_reports_room_finished(
    sim: LiveKitSimulator, client: SimulatorClient, sink: WebhookSink
) -> None:
    worker = client.register_worker(AGENT)
    client.join("standup", "alice")
    _, [job_id] = dispatch(sim, "standup")

    twirp(sim, lambda api: api.room.delete_room(DeleteRoomRequest(room="standup")))

    assert sink.events(6)[3:] == [
        ("participant_left", f"agent-{job_id}"),
        ("participant_left", "alice"),
        ("room_finished", ""),
    ]
    assert client.messages(worker)[1] == JobTermination(job_id=job_id, room="standup", reason="room closed")
    assert client.state().rooms == []


def test_twirp_calls_need_a_token_signed_with_the_api_secret(sim: LiveKitSimulator) -> None:
    with pytest.raises(TwirpError) as refused:
        twirp(sim, lambda api: api.room.list_rooms(ListRoomsRequest()), secret="not-the-secret-" * 3)

    assert refused.value.code == "unauthenticated"
    assert [r.code for r in sim.twirp.rejected_auth] == ["unauthenticated"]
    assert (sim.api_key, sim.api_secret) == (API_KEY, API_SECRET)
