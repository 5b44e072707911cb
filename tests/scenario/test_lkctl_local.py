"""``lkctl`` against the local stack, the way README.md shows it: the installed console script's
bare ``lkctl dev`` (no PYTHONPATH, not from the repository root, no AWS configuration at all),
then ``lkctl --dev ...`` and ``lkctl sim ...`` reading what a user reads."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from api.models import Stats
from cli.main import lkctl
from tests.local_stack.helpers import eventually

LKCTL = Path(sys.executable).parent / "lkctl"
WARM_TASKS = 1


def no_aws(**extra: str) -> dict[str, str]:
    """No AWS configuration at all (no variables, files or IMDS), and no PYTHONPATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LKCTL_", "LIVEKIT_")) and key != "PYTHONPATH"
    }
    return {
        **env,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "240",
        **extra,
    }


@dataclass(frozen=True)
class Stack:
    api_url: str
    simulator_url: str
    started: float  # monotonic, when `lkctl dev` printed where everything is


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert LKCTL.exists(), "lkctl is not installed in this venv (make does it)"
    elsewhere = tmp_path_factory.mktemp("not-the-repository")
    process = subprocess.Popen(
        [
            str(LKCTL),
            "dev",
            "--simulator",  # the sim commands below need it, even where a livekit-server is cached
            "--port=0",
            "--simulator-port=0",
            "--sweep-interval=600",  # a sweep on the schedule would come too late to count
            f"--set=WARM_TASKS={WARM_TASKS}",
            "--set=HEARTBEAT_SECONDS=1",
            f"--log-dir={elsewhere / 'logs'}",
        ],
        cwd=elsewhere,
        env=no_aws(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first.startswith("{"):
            process.kill()
            raise AssertionError(f"lkctl dev did not start: {first}{process.communicate()[1]}")
        info = json.loads(first)
        yield Stack(info["api_url"], info["simulator_url"], time.monotonic())
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def local(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(
        lkctl, ["--dev", "--url", stack.api_url, *args], env=no_aws(), catch_exceptions=False
    )


def sim(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(
        lkctl, ["sim", "--simulator-url", stack.simulator_url, *args], env=no_aws(), catch_exceptions=False
    )


def test_the_warm_pool_fills_at_start_up_not_at_the_first_scheduled_sweep(stack: Stack) -> None:
    def free_slots() -> int:
        return int(Stats.model_validate_json(local(stack, "pool", "show", "--json").stdout).warm_slots)

    eventually("a free warm slot", lambda: free_slots() == WARM_TASKS, timeout=30)
    shown = local(stack, "pool", "show").stdout

    assert time.monotonic() - stack.started < 30, "long before the schedule's first sweep (600 s)"
    assert re.search(rf"free warm slots\s+│ {WARM_TASKS} ", shown), shown


def test_the_console_script_calls_the_local_stack_with_no_aws_credentials(stack: Stack) -> None:
    done = subprocess.run(
        [str(LKCTL), "--dev", "--url", stack.api_url, "room", "list"],
        env=no_aws(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "room(s)" in done.stderr and "AWS" not in done.stderr


def test_a_session_through_sim_and_the_noun_verb_commands(stack: Stack) -> None:
    joined = sim(stack, "join", "standup", "alice")
    listed = eventually(
        "the room in the list", lambda: (r := local(stack, "room", "list")) and "standup" in r.stdout and r
    )
    shown = local(stack, "room", "show", "standup")
    stats = local(stack, "stats")
    swept = local(stack, "sweep", "run")
    left = sim(stack, "leave", "standup", "alice")

    assert joined.exit_code == 0, joined.stderr
    assert "alice" in joined.stdout
    assert listed.exit_code == 0 and "1 room(s)" in listed.stderr
    assert shown.exit_code == 0 and "alice" in shown.stdout
    assert "in 7d" in shown.stdout or "never (active)" in shown.stdout
    assert stats.exit_code == 0
    assert "n/a (no CloudWatch data)" in stats.stdout, "nothing feeds CloudWatch locally: no zeros"
    assert swept.exit_code == 0 and "rooms visited" in swept.stdout
    assert "OldestAgentAgeSeconds" not in swept.stdout and "Rooms[State=" not in swept.stdout
    assert "rooms (active)" in swept.stdout or "rooms (starting)" in swept.stdout
    assert left.exit_code == 0, left.stderr
    assert "alice" in left.stdout


@pytest.mark.parametrize(
    ("identity", "says"),
    [
        ("", "identity '': String should have at least 1 character"),
        ("ali\nce", "identity 'ali\\nce': must not contain control characters"),
    ],
)
def test_a_bad_identity_is_one_line_of_error_and_nothing_joins(
    stack: Stack, identity: str, says: str
) -> None:
    result = sim(stack, "join", "standup-bad", identity)
    state = sim(stack, "state", "--json")

    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {says}"
    assert "standup-bad" not in state.stdout
