"""The control endpoint over HTTP: participants join, leave and refresh; state and fault knobs;
clear 4xx answers to bad input."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from local.livekit_sim import (
    LiveKitSimulator,
    ParticipantKind,
    SimulatorClient,
    SimulatorError,
    WebhookFaults,
)
from tests.livekit_sim.conftest import AGENT
from tests.livekit_sim.sink import WebhookSink


def raw(
    sim: LiveKitSimulator, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(sim.url + path, data=body, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_participants_join_and_leave_with_their_kinds(client: SimulatorClient, sink: WebhookSink) -> None:
    alice = client.join("standup", "alice").participant
    phone = client.join("standup", "+15550100", ParticipantKind.SIP, name="Caller").participant

    [room] = client.state().rooms
    assert [(p.sid, p.identity, p.kind, p.name) for p in room.participants] == [
        (alice.sid, "alice", ParticipantKind.STANDARD, ""),
        (phone.sid, "+15550100", ParticipantKind.SIP, "Caller"),
    ]
    assert client.leave("standup", sid=phone.sid).left == [phone]
    assert client.leave("standup", identity="alice").left == [alice]
    assert client.state().rooms[0].participants == []
    assert sink.events(5)[3:] == [("participant_left", "+15550100"), ("participant_left", "alice")]
    assert sink.received[2].json["participant"]["kind"] == "SIP"


def test_a_refresh_replaces_the_old_connection_which_leaves_before_the_new_one_joins(
    client: SimulatorClient, sink: WebhookSink
) -> None:
    """livekit-server v1.13.5 keeps one participant per identity: StartSession removes the old
    one (DUPLICATE_IDENTITY) before the new one joins, as the parity test sees it do."""
    old = client.join("standup", "alice").participant

    refreshed = client.refresh("standup", "alice")

    assert refreshed.left == [old] and refreshed.joined.sid != old.sid
    assert [p.sid for p in client.state().rooms[0].participants] == [refreshed.joined.sid]
    received = sink.wait_for(4)
    assert [(r.json["event"], r.json["participant"]["sid"]) for r in received[2:]] == [
        ("participant_left", old.sid),
        ("participant_joined", refreshed.joined.sid),
    ]


def test_joining_with_an_identity_already_in_the_room_replaces_that_participant(
    client: SimulatorClient, sink: WebhookSink
) -> None:
    first = client.join("standup", "alice").participant

    second = client.join("standup", "alice").participant

    assert [p.sid for p in client.state().rooms[0].participants] == [second.sid]
    assert [(r.json["event"], r.json["participant"]["sid"]) for r in sink.wait_for(4)[2:]] == [
        ("participant_left", first.sid),
        ("participant_joined", second.sid),
    ]


def test_state_shows_dispatches_jobs_and_workers(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    worker = client.register_worker(AGENT, slots=2)
    client.join("standup", "alice")
    dispatch = sim.world.create_dispatch("standup", AGENT, "{}")

    state = client.state()

    [room] = state.rooms
    [job] = dispatch.jobs
    default, ours = room.dispatches  # a room opened without CreateRoom's agents dispatches "any agent"
    assert [(d.agent_name, d.jobs) for d in [default]] == [("", [])]
    assert (ours.dispatch_id, ours.agent_name) == (dispatch.dispatch_id, AGENT)
    assert [(j.job_id, j.status, j.worker_id) for j in ours.jobs] == [(job.job_id, "JS_RUNNING", worker)]
    assert [p.kind for p in room.participants] == [ParticipantKind.STANDARD, ParticipantKind.AGENT]
    assert [(w.worker_id, w.slots, w.jobs) for w in state.workers] == [(worker, 2, [job.job_id])]
    assert room.closes_at is None and state.now == sim.snapshot().now


def test_fault_knobs_are_read_and_set(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    assert client.faults() == WebhookFaults()

    changed = client.set_faults(
        WebhookFaults(duplicate=0.5, reorder=0.25, reorder_window=3, loss=0.1, seed=9)
    )

    assert changed == client.faults() == sim.webhooks.faults == client.state().webhooks.faults
    assert changed.seed == 9


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/sim/rooms/standup/join", b"{not json", 400, "body is not JSON"),
        ("POST", "/sim/rooms/standup/join", b'{"identity": "a", "kind": "robot"}', 422, "kind"),
        ("POST", "/sim/rooms/standup/join", b'{"identity": ""}', 422, "identity"),
        ("POST", "/sim/rooms/standup/join", b'{"identity": "a", "colour": "red"}', 422, "colour"),
        ("POST", "/sim/rooms/standup/leave", b'{"sid": "PA_1", "identity": "a"}', 422, "exactly one"),
        ("POST", "/sim/rooms/standup/leave", b'{"identity": "nobody"}', 404, "no participant"),
        ("POST", "/sim/rooms/standup/refresh", b'{"identity": "nobody"}', 404, "no participant"),
        ("PUT", "/sim/faults", b'{"loss": 2}', 422, "loss"),
        ("POST", "/sim/workers", b'{"agent_name": "a", "slots": 0}', 422, "slots"),
        ("GET", "/sim/workers/AW_nobody/messages", None, 404, "no worker"),
        ("GET", "/sim/workers/AW_nobody/messages?wait=99", None, 400, "wait must be"),
        ("POST", "/sim/workers/AW_nobody/jobs/AJ_1/end", b"{}", 404, "no worker"),
        ("GET", "/sim/nothing-here", None, 404, "no route"),
        ("DELETE", "/sim/state", None, 405, "not allowed"),
    ],
)
def test_bad_input_gets_a_4xx_that_says_what_is_wrong(
    sim: LiveKitSimulator, method: str, path: str, body: bytes | None, status: int, says: str
) -> None:
    answered, payload = raw(sim, method, path, body)

    assert answered == status
    assert says in payload["error"] + json.dumps(payload.get("fields", []))


def test_the_client_raises_the_answer_with_its_fields(client: SimulatorClient) -> None:
    with pytest.raises(SimulatorError) as refused:
        client.leave("standup", sid="PA_1", identity="alice")

    assert refused.value.status == 422 and "exactly one" in str(refused.value.fields)


def test_the_client_says_when_nothing_answers() -> None:
    with pytest.raises(SimulatorError) as unreachable:
        SimulatorClient("http://127.0.0.1:9").state()

    assert unreachable.value.status == 0 and "cannot reach the LiveKit simulator" in unreachable.value.message
