"""``lkctl`` end to end: the CLI signs with SigV4 and calls the API served locally over HTTP
(tests/fakes/api_gateway.py checks the signature as API Gateway's IAM authorizer would, then
runs handlers/api.py on moto and the fake LiveKit). Tests read what a user reads: stdout for
results, stderr for status and errors, and the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import jwt
import pytest
from click.testing import CliRunner, Result

from api.models import JoinResponse, RoomDetail, RoomPage, Stats, SweepSummary
from cli import rooms
from cli.main import lkctl
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.room import Human, Room
from local.fixtures import TABLE
from tests.api_harness import ApiCalls, agent_ready, human
from tests.fakes.api_gateway import LocalHttpApi

LKCTL = Path(sys.executable).parent / "lkctl"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """In-process, on a terminal wide enough that task ARNs stay on one line of a table."""
    return CliRunner().invoke(
        lkctl, list(args), env={"COLUMNS": "240", **(env or {})}, catch_exceptions=False
    )


def at(server: LocalHttpApi, *args: str, env: dict[str, str] | None = None) -> Result:
    return run("--url", server.url, *args, env=env)


# --- commands -----------------------------------------------------------------------------------


def test_join_prints_the_connection_details_and_a_token_for_the_room(
    api: ApiCalls, served_api: LocalHttpApi
) -> None:
    result = at(served_api, "room", "join", "standup", "alice", "--name", "Alice", "--attribute", "role=host")

    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, api.aws.livekit.api_secret, algorithms=["HS256"])
    assert claims["video"]["room"] == "standup" and claims["sub"] == "alice"
    assert claims["attributes"] == {"role": "host"}
    assert "waiting_for_worker" in result.stdout and api.aws.livekit.url in result.stdout
    assert len(api.tasks()) == 1


def test_join_json_is_the_api_model(api: ApiCalls, served_api: LocalHttpApi) -> None:
    result = at(served_api, "room", "join", "standup", "alice", "--json")

    answer = JoinResponse.model_validate_json(result.stdout)
    assert answer.room == "standup" and answer.agent.task_arn == api.tasks()[0]


def test_rooms_table_json_and_cursor(api: ApiCalls, served_api: LocalHttpApi) -> None:
    for number, room in enumerate(["alpha", "bravo", "charlie"]):
        human(api, "participant_joined", room, f"PA_{number}")

    table = at(served_api, "room", "list")
    first = at(served_api, "room", "list", "--limit", "2", "--json")
    page = RoomPage.model_validate_json(first.stdout)
    rest = at(served_api, "room", "list", "--cursor", str(page.next_cursor), "--json")

    assert table.exit_code == 0
    assert all(name in table.stdout for name in ("alpha", "bravo", "charlie")) and "starting" in table.stdout
    assert "3 room(s)" in table.stderr
    assert [room.name for room in page.rooms] == ["alpha", "bravo"] and page.next_cursor
    assert "--cursor" in first.stderr
    assert [room.name for room in RoomPage.model_validate_json(rest.stdout).rooms] == ["charlie"]


def test_rooms_filtered_by_state(api: ApiCalls, served_api: LocalHttpApi) -> None:
    human(api, "participant_joined", "busy", "PA_1")
    human(api, "participant_joined", "quiet", "PA_2")
    human(api, "participant_left", "quiet", "PA_2")

    result = at(served_api, "room", "list", "--state", "grace", "--json")

    assert [room.name for room in RoomPage.model_validate_json(result.stdout).rooms] == ["quiet"]


def test_room_list_stops_at_the_limit_and_prints_the_cursor_to_the_rest(
    api: ApiCalls, served_api: LocalHttpApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18 point 9: a limit past one page (here 2 rooms a page) used to drop what the last
    page held beyond the limit, with no cursor to reach it."""
    monkeypatch.setattr(rooms, "PAGE_SIZE_MAX", 2)
    names = ["alpha", "bravo", "charlie", "delta", "echo"]
    for number, room in enumerate(names):
        human(api, "participant_joined", room, f"PA_{number}")

    first = at(served_api, "room", "list", "--limit", "3", "--json")
    page = RoomPage.model_validate_json(first.stdout)
    rest = RoomPage.model_validate_json(
        at(served_api, "room", "list", "--cursor", str(page.next_cursor), "--json").stdout
    )

    assert [room.name for room in page.rooms] == names[:3]
    assert f"more with `lkctl room list --cursor {page.next_cursor}`" in first.stderr
    assert [room.name for room in rest.rooms] == names[3:] and rest.next_cursor is None


def test_room_list_offers_only_the_states_the_api_can_list(served_api: LocalHttpApi) -> None:
    closed = at(served_api, "room", "list", "--state", "closed")

    assert closed.exit_code == 2 and "'closed' is not one of" in closed.stderr
    assert "'grace'" in closed.stderr and "'idle'" not in closed.stderr


def test_a_closed_room_says_why_it_closed_and_when_its_record_expires(
    api: ApiCalls, served_api: LocalHttpApi
) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    agent_ready(api, "standup")
    at(served_api, "room", "close", "standup", "--delete-room")

    shown = at(served_api, "room", "show", "standup")

    assert shown.exit_code == 0 and "closed" in shown.stdout
    assert "closed by an operator" in shown.stdout, "deleting the LiveKit room was the operator's close"
    assert "(in 7d)" in shown.stdout and "h)" not in shown.stdout


def test_the_first_spellings_still_work(api: ApiCalls, served_api: LocalHttpApi) -> None:
    human(api, "participant_joined", "standup", "PA_1")

    old = [at(served_api, *args) for args in (["rooms"], ["show", "standup"], ["stats"], ["gc", "-q"])]
    new = [
        at(served_api, *args)
        for args in (["room", "list"], ["room", "show", "standup"], ["stats", "show"], ["sweep", "run", "-q"])
    ]

    assert all(result.exit_code == 0 for result in old + new)
    assert [result.stdout.splitlines()[0] for result in old] == [r.stdout.splitlines()[0] for r in new]
    assert "rooms " not in at(served_api, "--help").stdout, "aliases stay out of --help"


def test_show_a_room(api: ApiCalls, served_api: LocalHttpApi) -> None:
    human(api, "participant_joined", "standup", "PA_1", "alice")
    task = agent_ready(api, "standup")

    table = at(served_api, "room", "show", "standup")
    detail = RoomDetail.model_validate_json(at(served_api, "room", "show", "standup", "--json").stdout)

    assert table.exit_code == 0
    for shown in ("active", "dispatched", "alice", "PA_1", task, "never (active)"):
        assert shown in table.stdout, shown
    assert detail.agent is not None and detail.agent.task_arn == task


def test_close_with_delete_room(api: ApiCalls, served_api: LocalHttpApi) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    agent_ready(api, "standup")

    result = at(served_api, "room", "close", "standup", "--delete-room")

    assert result.exit_code == 0, result.stderr
    assert "LiveKit room deleted" in result.stdout and "closed" in result.stdout
    assert api.aws.livekit.state.get_room("standup") is None


def test_reset_a_failed_room(api: ApiCalls, served_api: LocalHttpApi) -> None:
    api.aws.livekit.state.add_participant("standup", "PA_1", "alice")
    live = api.aws.livekit.state.get_room("standup")
    assert live is not None
    DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE).create(
        Room(
            name="standup",
            sid=live.sid,
            humans={"PA_1": Human(identity="alice", joined_at=1.0)},
            crashes=(1.0, 2.0, 3.0),
            failed_at=3.0,
        )
    )

    result = at(served_api, "room", "reset", "standup", "--json")

    assert json.loads(result.stdout) == {
        "room": "standup",
        "state": "starting",
        "was_failed": True,
        "agent": "waiting_for_worker",
    }


def test_stats_and_gc(api: ApiCalls, served_api: LocalHttpApi) -> None:
    human(api, "participant_joined", "standup", "PA_1")

    stats = at(served_api, "stats", "show")
    stats_json = Stats.model_validate_json(at(served_api, "stats", "--json").stdout)
    gc = at(served_api, "sweep", "run")
    gc_json = SweepSummary.model_validate_json(at(served_api, "sweep", "run", "--json", "--quiet").stdout)

    assert stats.exit_code == 0 and "agents (starting, active, grace)" in stats.stdout
    assert "agent starts" in stats.stdout and "n/a (no CloudWatch data)" in stats.stdout, "not 0"
    assert stats_json.active_agents == 1 and stats_json.rooms_by_state["starting"] == 1
    assert gc.exit_code == 0 and "rooms visited" in gc.stdout and "sweeping" in gc.stderr
    assert "rooms (starting)" in gc.stdout and "rooms (closed)" not in gc.stdout
    assert "Rooms[State=" not in gc.stdout and "OldestAgentAgeSeconds" not in gc.stdout
    assert gc_json.complete and gc_json.rooms_total == 1


# --- finding the API ------------------------------------------------------------------------------


def deploy_stack(url: str, name: str = "livekit-agents-dev") -> None:
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ApiUrl": {"Value": url + "/"}},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


def test_the_api_url_comes_from_the_stack_output(api: ApiCalls, served_api: LocalHttpApi) -> None:
    deploy_stack(served_api.url)
    human(api, "participant_joined", "standup", "PA_1")

    result = run("room", "list", "--json")

    assert result.exit_code == 0, result.stderr
    assert [room.name for room in RoomPage.model_validate_json(result.stdout).rooms] == ["standup"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--region", "eu-west-1"], "Stack 'livekit-agents-dev' not found in eu-west-1"),
        (["--stack", "someone-else"], "Stack 'someone-else' not found in us-east-1"),
    ],
)
def test_a_stack_not_found_says_to_check_the_region_or_name(
    served_api: LocalHttpApi, args: list[str], says: str
) -> None:
    deploy_stack(served_api.url)

    result = run(*args, "room", "list")

    assert result.exit_code == 3
    assert says in result.stderr and "--region" in result.stderr and "--url" in result.stderr
    assert result.stdout == ""


# --- errors say what to do next -----------------------------------------------------------------------


def test_an_unknown_room(served_api: LocalHttpApi) -> None:
    result = at(served_api, "room", "show", "nowhere")

    assert result.exit_code == 1
    assert "room 'nowhere' is not tracked" in result.stderr and "lkctl rooms" in result.stderr


def test_bad_input_names_the_field(served_api: LocalHttpApi) -> None:
    result = at(served_api, "room", "join", "standup", "bell\a")
    usage = at(served_api, "room", "join", "standup", "alice", "--attribute", "no-equals-sign")

    assert result.exit_code == 1 and "body.identity: must not contain control characters" in result.stderr
    assert usage.exit_code == 2 and "KEY=VALUE" in usage.stderr


def test_credentials_api_gateway_refuses_are_a_403_that_says_why(served_api: LocalHttpApi) -> None:
    other = {"AWS_ACCESS_KEY_ID": "AKIAOTHERACCOUNT0000", "AWS_SECRET_ACCESS_KEY": "other"}

    result = at(served_api, "room", "list", env=other)

    assert result.exit_code == 1
    assert "403" in result.stderr and "execute-api:Invoke" in result.stderr
    assert served_api.refused == ["The security token included in the request is invalid."]


def test_a_signature_for_the_wrong_region_says_to_pass_the_stacks_region(served_api: LocalHttpApi) -> None:
    result = run("--url", served_api.url, "--region", "eu-west-1", "room", "list")

    assert result.exit_code == 3
    assert "not in eu-west-1" in result.stderr and "--region" in result.stderr


def test_livekit_down_is_a_503_with_when_to_retry(
    api: ApiCalls, served_api: LocalHttpApi, backoff_sleeps: list[float]
) -> None:
    api.aws.livekit.set_down(True)

    result = at(served_api, "room", "join", "standup", "alice")

    assert result.exit_code == 1
    assert "LiveKit is unavailable" in result.stderr and "try again in 5 s" in result.stderr
    assert backoff_sleeps == [1.0, 2.0, 4.0]


def test_an_api_url_nobody_answers(api: ApiCalls) -> None:
    result = run("--url", "http://127.0.0.1:9", "room", "list")

    assert result.exit_code == 3 and "Cannot reach the API at http://127.0.0.1:9" in result.stderr


# --- the installed console script -------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """No AWS configuration at all: no variables, no config or credentials files, no IMDS."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "LKCTL_"))}
    return {
        **env,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


@pytest.fixture
def console_script() -> Path:
    assert LKCTL.exists(), "lkctl is not installed in this venv: pip install -e '.[cli]' (make does it)"
    return LKCTL


def test_the_console_script_calls_the_api(
    api: ApiCalls, served_api: LocalHttpApi, console_script: Path
) -> None:
    human(api, "participant_joined", "standup", "PA_1")
    credentials = boto3.Session().get_credentials()
    assert credentials is not None
    env = clean_env(
        AWS_ACCESS_KEY_ID=credentials.access_key,
        AWS_SECRET_ACCESS_KEY=credentials.secret_key,
        AWS_REGION="us-east-1",
    )

    done = subprocess.run(
        [str(console_script), "--url", served_api.url, "room", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert [room.name for room in RoomPage.model_validate_json(done.stdout).rooms] == ["standup"]


def test_no_credentials_says_how_to_get_some(served_api: LocalHttpApi, console_script: Path) -> None:
    done = subprocess.run(
        [str(console_script), "--url", served_api.url, "--region", "us-east-1", "room", "list"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 3
    assert "No AWS credentials found" in done.stderr and "aws configure" in done.stderr
    assert "--dev" in done.stderr, "the local stack needs none"
    assert served_api.refused == [], "nothing was sent"
