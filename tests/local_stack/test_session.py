"""A room session through the simulator, over HTTP, ends with nothing running; the live page shows
it as it happens."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.room import RoomState
from local.livekit_sim import SimulatorClient
from local.stack.session import DevSession
from tests.local_stack.chromium import CHROMIUM, Chromium
from tests.local_stack.conftest import GRACE_SECONDS
from tests.local_stack.helpers import agents_in, dispatches_in, eventually


def table(dev: DevSession) -> DynamoDBStore:
    assert dev.stack is not None and dev.moto is not None
    client = boto3.client("dynamodb", endpoint_url=dev.moto.url, region_name=dev.stack.aws.region)
    return DynamoDBStore(client, dev.stack.aws.table_name)


def test_a_session_keeps_one_agent_while_humans_are_there_and_ends_with_nothing_running(
    dev: DevSession,
) -> None:
    assert dev.stack is not None and dev.stack.runner is not None and dev.simulator is not None
    sim, runner, store = SimulatorClient(dev.simulator.url), dev.stack.runner, table(dev)
    launched_before = runner.started()

    sim.join("session", "coach")
    eventually("the agent in the room", lambda: agents_in(sim, "session") == 1)
    eventually(
        "the room active", lambda: (r := store.get("session")) is not None and r.state is RoomState.ACTIVE
    )
    sim.join("session", "client")
    sim.refresh("session", "client")
    sim.leave("session", identity="client")
    sim.leave("session", identity="coach")
    eventually(
        "the grace period", lambda: (r := store.get("session")) is not None and r.state is RoomState.GRACE
    )
    sim.join("session", "coach")
    eventually(
        "the coach back", lambda: (r := store.get("session")) is not None and r.state is RoomState.ACTIVE
    )
    sim.leave("session", identity="coach")

    closed = eventually(
        "the room closed",
        lambda: (r := store.get("session")) is not None and r.state is RoomState.CLOSED and r,
        timeout=GRACE_SECONDS + 15,
    )
    eventually("the task to exit", lambda: not runner.running(), timeout=10)
    assert closed.agent is None
    assert runner.started() - launched_before == 1, "the coach's return kept the same agent"
    assert agents_in(sim, "session") == 0
    assert dispatches_in(sim, "session") == 0
    assert not list(store.live_workers()), "the worker recorded its stop"


def test_a_room_livekit_opens_on_a_join_outlives_the_grace_deadline_as_the_join_apis_do(
    dev: DevSession,
) -> None:
    """``lkctl sim join`` (or any client with its own token) opens the room with the timeouts the
    join API gives the rooms it creates, not LiveKit's 20 s: no warning starts the README's path."""
    assert dev.simulator is not None and dev.stack is not None
    sim, store = SimulatorClient(dev.simulator.url), table(dev)

    sim.join("opened", "carol")
    room = eventually("the room recorded", lambda: store.get("opened"))

    expected = dev.stack.settings().departure_timeout
    assert room.departure_timeout == expected == 60 + GRACE_SECONDS + 10
    assert not [e for e in dev.timeline.recent(500) if e["room"] == "opened" and "WARNING" in e["text"]]
    sim.leave("opened", identity="carol")


# What the page shows, read from its DOM (each row carries its figures as data attributes).
SHOWN = """JSON.stringify({
  updates: Number(document.getElementById("status").dataset.updates),
  rooms: [...document.querySelectorAll("#rooms tbody tr[data-room]")].map((row) => ({...row.dataset})),
  workers: [...document.querySelectorAll("#workers tbody tr[data-task]")].map((row) => ({...row.dataset})),
})"""


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
)
def test_the_live_page_follows_the_session_as_it_happens(dev: DevSession, tmp_path: Path) -> None:
    assert dev.simulator is not None
    sim = SimulatorClient(dev.simulator.url)

    with Chromium(dev.info()["api_url"], tmp_path / "profile") as page:
        shown = lambda: json.loads(page.evaluate(SHOWN))  # noqa: E731
        first = eventually("the page's first update", lambda: (s := shown())["updates"] > 0 and s)

        sim.join("live", "alice")
        active = eventually("the agent on the page", lambda: _room(shown(), "live", "active"))
        assert active["humans"] == "alice" and active["agentTask"] and active["dispatch"]
        eventually(
            "the worker's job on the page", lambda: any(w["jobs"] == "live" for w in shown()["workers"])
        )

        sim.leave("live", identity="alice")
        grace = eventually("the grace countdown", lambda: _room(shown(), "live", "grace"))
        assert 0 < int(grace["graceLeft"]) <= GRACE_SECONDS
        eventually("the room closed", lambda: _room(shown(), "live", "closed"), timeout=GRACE_SECONDS + 15)
        last = shown()
        assert not any("live" in w["jobs"].split(",") for w in last["workers"])
        assert last["updates"] > first["updates"], "the page kept polling; it was never reloaded"


# The room view (``#room=NAME``): its fields by key, the humans with their waits, its timeline.
DETAIL = """JSON.stringify({
  room: document.getElementById("detail").hidden ? null : document.getElementById("detail").dataset.room,
  fields: Object.fromEntries([...document.querySelectorAll("#detail-fields tr[data-field]")]
    .map((row) => [row.dataset.field, row.querySelector("td").textContent])),
  humans: [...document.querySelectorAll("#detail-humans tbody tr[data-identity]")]
    .map((row) => ({...row.dataset})),
  timeline: document.getElementById("detail-timeline").textContent,
  pool: {...document.getElementById("pool").dataset},
  tasks: [...document.querySelectorAll("#tasks tbody tr[data-task]")].map((row) => ({...row.dataset})),
  settings: document.getElementById("settings").textContent,
})"""


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
)
def test_the_room_view_shows_who_waited_why_grace_ends_then_and_why_the_room_closed(
    dev: DevSession, tmp_path: Path
) -> None:
    assert dev.simulator is not None
    sim = SimulatorClient(dev.simulator.url)

    with Chromium(dev.info()["api_url"] + "#room=detail", tmp_path / "profile") as page:
        detail = lambda: json.loads(page.evaluate(DETAIL))  # noqa: E731
        eventually("the room view, empty", lambda: detail()["room"] == "detail")
        assert f"GRACE_PERIOD_SECONDS {GRACE_SECONDS}" in detail()["settings"]

        sim.join("detail", "alice")
        served = eventually(
            "the agent in the room view",
            lambda: (
                (d := detail())["humans"]
                and d["humans"][0]["waited"]
                and "agent-" in d["fields"]["agent"]
                and d
            ),
        )
        [alice] = served["humans"]
        assert alice["identity"] == "alice" and 0 <= float(alice["waited"]) < 20
        task = served["fields"]["task"]
        assert served["fields"]["slot"] == f"held on {task}"
        assert int(served["pool"]["total"]) >= 1
        serving = next(t for t in served["tasks"] if t["task"] == task)
        assert serving["serving"] == "detail", (
            "the task says whom it serves, not only whom it was launched for"
        )

        sim.leave("detail", identity="alice")
        grace = eventually(
            "the grace deadline and why", lambda: (d := detail())["fields"].get("grace_why") and d
        )
        assert grace["fields"]["grace_why"] == f"grace {GRACE_SECONDS} s from the last human leaving"

        closed = eventually(
            "why the room closed",
            lambda: (d := detail())["fields"]["state"] == "closed" and d,
            timeout=GRACE_SECONDS + 15,
        )
        assert (
            "the humans left and the grace period ran out (humans_left_grace_ended)"
            in closed["fields"]["closed"]
        )
        for happened in (
            "participant_joined alice",
            "participant_left alice",
            "detail: grace",
            "detail: closed",
        ):
            assert happened in closed["timeline"], happened
        assert "live:" not in closed["timeline"], "only this room's lines"


def _room(shown: dict[str, Any], name: str, state: str) -> dict[str, str] | None:
    return next((r for r in shown["rooms"] if r["room"] == name and r["state"] == state), None)


def test_the_http_api_answers_as_the_deployed_one_would(dev: DevSession) -> None:
    api = dev.info()["api_url"]

    def call(path: str, method: str = "GET", body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        request = urllib.request.Request(api + path.lstrip("/"), data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read()

    forged = json.dumps({"event": "room_started", "id": "EV_forged", "room": {"name": "forged"}}).encode()
    assert call("/livekit/webhook", "POST", forged, authorization="forged")[0] == 401
    assert call("/livekit/webhook", "POST", forged, **{"content-type": "application/webhook+json"})[0] == 401
    status, spec = call("/openapi.json")  # behind IAM when deployed: served here without SigV4
    assert status == 200 and "/rooms/{room}/join" in json.loads(spec)["paths"]
    assert call("/rooms/forged")[0] == 404, "the forged webhook wrote nothing"
    assert call("/nowhere") == (404, b'{"message": "Not Found"}')
    status, page = call("/")
    assert status == 200 and b'id="rooms"' in page
