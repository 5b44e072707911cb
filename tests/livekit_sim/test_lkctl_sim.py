"""``lkctl sim`` against a running simulator: what a user reads on stdout and stderr, and exit codes."""

from __future__ import annotations

from click.testing import CliRunner, Result

from cli.main import lkctl
from local.livekit_sim import LiveKitSimulator, SimulatorClient
from local.livekit_sim.models import JoinResult, LeaveResult, RefreshResult, SimState, WebhookFaults
from tests.livekit_sim.conftest import AGENT


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        lkctl, list(args), env={"COLUMNS": "240", **(env or {})}, catch_exceptions=False
    )


def sim_at(sim: LiveKitSimulator, *args: str) -> Result:
    return run("sim", "--simulator-url", sim.url, *args)


def test_join_a_phone_caller_and_see_it_in_the_state(sim: LiveKitSimulator) -> None:
    joined = sim_at(sim, "join", "standup", "+15550100", "--kind", "sip", "--json")
    table = sim_at(sim, "state")

    assert joined.exit_code == 0, joined.stderr
    participant = JoinResult.model_validate_json(joined.stdout).participant
    assert (participant.identity, participant.kind) == ("+15550100", "sip")
    assert table.exit_code == 0
    for shown in ("standup", participant.sid, "+15550100", "sip", "in use", "delivered"):
        assert shown in table.stdout, shown
    assert "1 room(s), 0 worker(s)" in table.stderr


def test_state_json_is_the_simulators_model(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    client.register_worker(AGENT)
    client.join("standup", "alice")
    sim.world.create_dispatch("standup", AGENT, "")

    result = sim_at(sim, "state", "--json")
    table = sim_at(sim, "state")

    state = SimState.model_validate_json(result.stdout)
    [room] = state.rooms
    assert [p.kind for p in room.participants] == ["standard", "agent"] and state.workers[0].jobs
    assert room.dispatches[-1].jobs[0].job_id in table.stdout and "JS_RUNNING" in table.stdout


def test_leave_and_refresh(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    alice = client.join("standup", "alice").participant
    client.join("standup", "bob")

    refreshed = sim_at(sim, "refresh", "standup", "alice", "--json")
    left = sim_at(sim, "leave", "standup", "bob")

    assert RefreshResult.model_validate_json(refreshed.stdout).left == [alice]
    assert left.exit_code == 0 and "bob" in left.stdout and "left standup" in left.stdout
    by_sid = sim_at(sim, "leave", "standup", "--sid", client.state().rooms[0].participants[0].sid, "--json")
    assert [p.identity for p in LeaveResult.model_validate_json(by_sid.stdout).left] == ["alice"]


def test_the_url_can_come_from_the_environment(sim: LiveKitSimulator) -> None:
    result = run("sim", "join", "standup", "alice", env={"LIVEKIT_SIM_URL": sim.url})

    assert result.exit_code == 0 and "alice" in result.stdout


def test_faults_are_shown_and_changed(sim: LiveKitSimulator) -> None:
    changed = sim_at(sim, "faults", "--duplicate", "0.5", "--seed", "3", "--json")
    more = sim_at(sim, "faults", "--loss", "0.1")
    cleared = sim_at(sim, "faults", "--clear", "--json")

    assert WebhookFaults.model_validate_json(changed.stdout) == WebhookFaults(duplicate=0.5, seed=3)
    assert "0.5" in more.stdout and "0.1" in more.stdout
    assert WebhookFaults.model_validate_json(cleared.stdout) == WebhookFaults() == sim.webhooks.faults


def test_errors_say_what_to_do(sim: LiveKitSimulator) -> None:
    unknown = sim_at(sim, "leave", "standup", "nobody")
    both = sim_at(sim, "leave", "standup", "alice", "--sid", "PA_1")
    neither = sim_at(sim, "leave", "standup")
    kind = sim_at(sim, "join", "standup", "alice", "--kind", "robot")
    nowhere = run("sim", "--simulator-url", "http://127.0.0.1:9", "state")

    assert unknown.exit_code == 1 and "no participant with identity 'nobody'" in unknown.stderr
    assert both.exit_code == 2 and "give IDENTITY (every connection of it) or --sid SID" in both.stderr
    assert neither.exit_code == 2 and "give IDENTITY" in neither.stderr
    assert kind.exit_code == 2 and "sip" in kind.stderr
    assert nowhere.exit_code == 3 and "Is the local stack running (`make dev`)?" in nowhere.stderr


def test_the_first_spelling_of_leave_still_works(sim: LiveKitSimulator, client: SimulatorClient) -> None:
    client.join("standup", "bob")

    left = sim_at(sim, "leave", "standup", "--identity", "bob")

    assert left.exit_code == 0 and "bob" in left.stdout


def test_without_a_url_it_is_the_local_stacks_simulator() -> None:
    shown = run("sim", "--help", env={"LIVEKIT_SIM_URL": ""})

    assert "[default: http://127.0.0.1:7880]" in shown.stdout


def test_identities_follow_the_apis_rule_before_anything_is_sent(
    sim: LiveKitSimulator, client: SimulatorClient
) -> None:
    empty = sim_at(sim, "join", "standup", "")
    newline = sim_at(sim, "join", "standup", "ali\nce")
    too_long = sim_at(sim, "refresh", "standup", "x" * 257)

    assert [r.exit_code for r in (empty, newline, too_long)] == [2, 2, 2]
    assert empty.stderr == "error: identity '': String should have at least 1 character\n"
    assert newline.stderr == "error: identity 'ali\\nce': must not contain control characters\n"
    assert "at most 256 UTF-8 bytes" in too_long.stderr and "Traceback" not in too_long.stderr
    assert client.state().rooms == []
