"""GET /rooms, GET /rooms/{room}, POST /rooms/{room}/close and /reset through the API handler."""

from __future__ import annotations

import time

import boto3
import pytest

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.room import Human, Room
from local.fixtures import TABLE
from tests.api_harness import ApiCalls, agent_ready, human, room_path, task_status

# --- GET /rooms -------------------------------------------------------------------------------


def test_rooms_are_listed_in_pages_each_once_in_name_order(api: ApiCalls) -> None:
    names = [f"room-{number}" for number in range(5)]
    for number, name in enumerate(names):
        human(api, "participant_joined", name, f"PA_{number}")

    seen, cursor, pages = [], None, 0
    while True:
        answer = api.get("/rooms", limit=2, **({"cursor": cursor} if cursor else {}))
        assert answer.status == 200, answer
        seen += [room["name"] for room in answer.body["rooms"]]
        pages += 1
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break

    assert seen == names and pages >= 3
    assert api.get("/rooms").body["rooms"][0] == {
        "name": "room-0",
        "state": "starting",
        "humans": 1,
        "agent": "waiting_for_worker",
        "grace_deadline": None,
        "updated_at": pytest.approx(time.time(), abs=30),
    }


def test_rooms_filtered_by_state(api: ApiCalls) -> None:
    human(api, "participant_joined", "busy", "PA_1")
    human(api, "participant_joined", "quiet", "PA_2")
    human(api, "participant_left", "quiet", "PA_2")

    answer = api.get("/rooms", state="grace")

    assert [room["name"] for room in answer.body["rooms"]] == ["quiet"]
    assert answer.body["rooms"][0]["grace_deadline"] == pytest.approx(time.time() + 60, abs=30)


@pytest.mark.parametrize("forged", ["a copy of a room", "a broken item"])
def test_a_task_tagging_its_own_item_as_a_room_neither_breaks_nor_joins_the_listing(
    api: ApiCalls, forged: str
) -> None:
    """A task may write its own ``TASK#`` item: tagged ``attention=room`` it sorts after every
    room in the index (``T`` > ``R``), where it must neither answer 500 nor list a fake room."""
    human(api, "participant_joined", "real", "PA_1")
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    real = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#real"}})["Item"]
    fake = (
        {**real, "name": {"S": "fake"}} if forged == "a copy of a room" else {"attention": real["attention"]}
    )
    dynamodb.put_item(TableName=TABLE, Item={**fake, "pk": {"S": "TASK#AROAFAKE:task-1"}})

    first = api.get("/rooms", limit=1)
    second = api.get("/rooms", limit=1, cursor=first.body["next_cursor"])
    everything = api.get("/rooms")

    assert (first.status, second.status, everything.status) == (200, 200, 200)
    assert [room["name"] for room in first.body["rooms"]] == ["real"]
    assert (second.body["rooms"], second.body["next_cursor"]) == ([], None)
    assert [room["name"] for room in everything.body["rooms"]] == ["real"]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"state": "sleeping"}, 422, "query.state"),
        ({"limit": 0}, 422, "query.limit"),
        ({"limit": 201}, 422, "query.limit"),
        ({"limit": "many"}, 422, "query.limit"),
        ({"cursor": "not-a-cursor!"}, 400, None),
        ({"cursor": "RVZFTlQjMQ"}, 400, None),  # base64 of EVENT#1: not a room key
    ],
)
def test_bad_listing_parameters_are_refused(
    api: ApiCalls, query: dict[str, object], status: int, field: str | None
) -> None:
    answer = api.get("/rooms", **query)

    assert answer.status == status, answer
    if field:
        assert [f["field"] for f in answer.body["fields"]] == [field]
    else:
        assert "next_cursor of the previous page" in answer.body["error"]


# --- GET /rooms/{room} --------------------------------------------------------------------------


def test_one_room_shows_its_humans_agent_and_worker(api: ApiCalls) -> None:
    human(api, "participant_joined", "standup", "PA_1", "alice")
    human(api, "participant_joined", "standup", "PA_2", "bob")
    task = agent_ready(api, "standup")

    body = api.get("/rooms/standup").body

    assert body["state"] == "active"
    assert [(h["sid"], h["identity"]) for h in body["humans"]] == [("PA_1", "alice"), ("PA_2", "bob")]
    assert all(h["joined_at"] == pytest.approx(time.time(), abs=30) for h in body["humans"])
    agent = body["agent"]
    assert agent["status"] == "dispatched" and agent["task_arn"] == task
    [dispatch] = api.aws.livekit.state.list_dispatches("standup")
    assert agent["dispatch_id"] == dispatch.dispatch_id
    assert agent["worker_status"] == "ready" and 0 <= agent["heartbeat_age_seconds"] < 30
    assert body["grace"] is None and body["expires_at"] is None and body["crashes"] == []


def test_a_room_in_grace_shows_its_deadline_and_a_closed_one_when_it_expires(api: ApiCalls) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    human(api, "participant_left", "standup", "PA_1")
    in_grace = api.get("/rooms/standup").body
    assert in_grace["state"] == "grace"
    assert in_grace["grace"]["deadline"] == pytest.approx(time.time() + 60, abs=30)
    assert in_grace["grace"]["why"].startswith("grace 60 s from the last human leaving")
    assert in_grace["closed_reason"] is None

    api.post(room_path("standup", "close"))
    closed = api.get("/rooms/standup").body

    assert closed["state"] == "closed" and closed["agent"] is None
    assert closed["closed_reason"] == "force_closed" and closed["closed_at"] is not None
    assert closed["expires_at"] == pytest.approx(time.time() + 7 * 24 * 3600, abs=60)


@pytest.mark.parametrize("method", ["GET", "POST close", "POST reset"])
def test_unknown_rooms_are_404_and_nothing_is_written(api: ApiCalls, method: str) -> None:
    verb, _, action = method.partition(" ")
    answer = api.call(verb, room_path("nowhere", *([action] if action else [])))

    assert answer.status == 404
    assert "'nowhere' is not tracked" in answer.body["error"] and "GET /rooms" in answer.body["error"]
    assert api.table_items() == [] and api.tasks() == []


# --- POST /rooms/{room}/close -------------------------------------------------------------------


def test_close_removes_a_lingering_agent_now_and_is_idempotent(api: ApiCalls) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    task = agent_ready(api, "standup")
    human(api, "participant_left", "standup", "PA_1")

    first = api.post(room_path("standup", "close"))
    second = api.post(room_path("standup", "close"))

    assert first.status == 200
    assert first.body == {
        "room": "standup",
        "state": "closed",
        "agent_removed": True,
        "room_deleted": False,
        "relaunched": False,
    }
    assert task_status(task) == "STOPPED"
    assert api.aws.livekit.state.list_dispatches("standup") == []
    assert second.body == {**first.body, "agent_removed": False}


def test_close_with_humans_there_gives_them_a_fresh_agent(api: ApiCalls) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    old = agent_ready(api, "standup")

    answer = api.post(room_path("standup", "close"), {"delete_room": False})

    assert answer.body["agent_removed"] is True and answer.body["relaunched"] is True
    assert answer.body["state"] == "starting"
    assert task_status(old) == "STOPPED"
    [new] = [arn for arn in api.tasks() if arn != old]
    assert api.get("/rooms/standup").body["agent"]["task_arn"] == new


def test_close_with_delete_room_ends_the_session_for_everyone(api: ApiCalls) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    task = agent_ready(api, "standup")

    answer = api.post(room_path("standup", "close"), {"delete_room": True})
    again = api.post(room_path("standup", "close"), {"delete_room": True})

    assert answer.body == {
        "room": "standup",
        "state": "closed",
        "agent_removed": True,
        "room_deleted": True,
        "relaunched": False,
    }
    assert api.aws.livekit.state.get_room("standup") is None
    assert task_status(task) == "STOPPED" and len(api.tasks()) == 1
    assert again.status == 200 and again.body["room_deleted"] is False


def test_close_refuses_unknown_fields(api: ApiCalls) -> None:
    human(api, "participant_joined", "standup", "PA_1")

    answer = api.post(room_path("standup", "close"), {"delete": True})

    assert answer.status == 422 and answer.body["fields"][0]["field"] == "body.delete"


# --- POST /rooms/{room}/reset -------------------------------------------------------------------


def test_reset_gives_the_humans_of_a_failed_room_an_agent(api: ApiCalls) -> None:
    now = time.time()
    store = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
    api.aws.livekit.state.add_participant("standup", "PA_1", "alice")
    live = api.aws.livekit.state.get_room("standup")
    assert live is not None
    store.create(
        Room(
            name="standup",
            sid=live.sid,
            humans={"PA_1": Human(identity="alice", joined_at=now - 300)},
            crashes=(now - 200, now - 100, now - 50),
            failed_at=now - 50,
            launches=3,
        )
    )

    answer = api.post(room_path("standup", "reset"))
    again = api.post(room_path("standup", "reset"))

    assert answer.body == {
        "room": "standup",
        "state": "starting",
        "was_failed": True,
        "agent": "waiting_for_worker",
    }
    assert len(api.tasks()) == 1
    assert again.body["was_failed"] is False and len(api.tasks()) == 1
    assert api.get("/rooms/standup").body["crashes"] == []
