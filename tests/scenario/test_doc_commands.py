"""Every command the docs show runs as written, or says here why it does not run in `make test`.

The commands are taken from README.md, infra/README.md, agent_container/README.md and docs/*.md:
each fenced shell block (one entry, keyed by its first command line) and each inline code span
that starts with a command (``make …``, ``lkctl …``, ``.venv/bin/…``, ``aws …``, a ``*.sh``
script, …). ``COMMANDS`` must name exactly those: a command added to the docs without an entry
here, or an entry whose command left the docs, fails the first test. Entries marked ``RUN`` run
in bash from the repository root with no AWS configuration and no PYTHONPATH — the lkctl ones
(the README has the reader ``source .venv/bin/activate``) with ``.venv/bin`` on the PATH, against
a local stack started by ``make dev`` itself, whose ports reach them through ``LKCTL_URL`` and
``LIVEKIT_SIM_URL``, and with ``LKCTL_DEV=1`` (``--dev``): the README's table shows them for a
deployed stack, which would need AWS. Each must end with its expected exit code and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "infra/README.md",
    ROOT / "agent_container/README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
VENV_BIN = ROOT / ".venv/bin"
_SHELL_BLOCK = re.compile(r"^[ \t]*```(?:sh|bash|shell|console)\n(.*?)^[ \t]*```", re.S | re.M)
_ANY_BLOCK = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.S | re.M)
_SPAN = re.compile(r"`([^`]+)`")  # a span may wrap onto the next line
_COMMAND_WORDS = ("make ", "lkctl ", ".venv/bin/", "python ", "python3 ", "PYTHONPATH=", "pip ", "curl ")
_COMMAND_WORDS += ("docker ", "sam ", "aws ", "source ", "livekit-server ", "bash ", "uv ")


@dataclass(frozen=True)
class Run:
    """Runs in `make test`: ``shell`` ``plain`` (a clean shell at the root) or ``lkctl`` (after
    ``source .venv/bin/activate``, against the local stack)."""

    shell: str = "plain"
    exit_code: int = 0
    says: str = ""
    or_else: tuple[int, str] | None = None  # another documented outcome: (exit code, what it says)


@dataclass(frozen=True)
class Elsewhere:
    """Runs, but takes minutes or a whole stack: where it is run."""

    where: str


@dataclass(frozen=True)
class Skip:
    """Cannot run without AWS, Docker or a LiveKit server: why."""

    why: str


AWS = "needs AWS credentials and a deployed stack"
DOCKER = "needs Docker (and AWS to push)"
LIVEKIT_SERVER = "a livekit-server left running; `make e2e` (in .ci/run) runs the real one"

COMMANDS: dict[str, Run | Elsewhere | Skip] = {
    # --- README.md
    "make demo": Elsewhere("tests/local_stack/test_demo.py runs its session (local.demo.main) and checks it"),
    "make test": Elsewhere(".ci/run runs it: it is the CI job"),
    "make openapi": Run(),
    "make reliability": Elsewhere("`make test` runs tests/reliability (through `make unit`)"),
    "make simulate": Elsewhere("minutes (docs/capacity.md: why); tests/sim runs the simulator small"),
    "make bench": Elsewhere("minutes; `make bench-smoke` (in `make test`) runs every benchmark small"),
    "make bench-smoke": Elsewhere("`make test` runs it"),
    "make e2e": Elsewhere(".ci/run runs it after `make test` (root, a network namespace, livekit-server)"),
    "make bench-e2e": Elsewhere("~20 minutes on the real server; .ci/run runs `make bench-e2e JOINS=3`"),
    "make bench-e2e JOINS=3": Elsewhere(".ci/run runs it after `make e2e`"),
    'make bench-e2e ARGS="--modes warm,early"': Elsewhere(
        "~8 minutes on the real server; .ci/run runs `make bench-e2e JOINS=3`"
    ),
    "make dev": Run("lkctl"),  # started once for the lkctl entries: see local_stack
    "make dev ARGS=--simulator": Elsewhere("how the lkctl entries' stack is started (local_stack below)"),
    "lkctl dev": Elsewhere("tests/scenario/test_lkctl_local.py runs it bare, from another directory"),
    ".venv/bin/lkctl dev": Elsewhere("what `make dev` runs (below); tests/scenario/test_lkctl_local.py"),
    "lkctl sim": Run("lkctl", exit_code=2, says="Usage: lkctl sim"),  # its help: the verbs
    "PYTHONPATH=functions .venv/bin/python -m sim": Elsewhere("what `make simulate` runs (above)"),
    "source .venv/bin/activate": Run(),
    "lkctl --help": Run("lkctl", says="Usage: lkctl"),
    ".venv/bin/lkctl --help": Run(says="Usage: lkctl"),
    "pip install -e '.[cli]'": Skip("installs into whatever environment runs it; make does it into .venv"),
    "lkctl sim join standup alice": Run("lkctl", says="joined standup"),
    "lkctl --dev room list": Run("lkctl", says="standup"),
    "lkctl room list": Run("lkctl", says="standup"),
    "lkctl room list --state grace": Run("lkctl"),
    "lkctl room show standup": Run("lkctl", says="room standup"),
    "lkctl room join standup alice": Run("lkctl", says="join standup as alice"),
    "lkctl stats": Run("lkctl", says="n/a (no CloudWatch data)"),
    "lkctl pool show": Run("lkctl", says="free warm slots"),
    "lkctl sweep run": Run("lkctl", says="rooms visited"),
    "lkctl room reset standup": Run("lkctl", says="was failed"),
    "lkctl sim leave standup alice": Run("lkctl", says="left standup"),
    "lkctl room close standup --delete-room": Run("lkctl", says="closed standup"),
    "python -m agent_worker": Skip(
        "what the local stack runs per task with a real LiveKit; " + LIVEKIT_SERVER
    ),
    "livekit-server --dev": Skip(LIVEKIT_SERVER),
    "livekit-server --dev --config livekit.yaml": Skip(LIVEKIT_SERVER),
    "API=$(aws cloudformation describe-stacks --stack-name livekit-agents-dev \\": Skip(AWS),
    # --- infra/README.md
    "infra/build_and_push_image.sh": Skip(DOCKER),
    'read -rp "LiveKit API key: " LK_KEY; read -rsp "LiveKit API secret: " LK_SECRET; echo': Skip(AWS),
    "sam build --use-container": Skip(AWS + " (and Docker)"),
    'sam build --config-file "$PWD/infra/samconfig.toml" --config-env dev': Skip(AWS),
    "python3 -m venv .venv && .venv/bin/pip install -q -r functions/requirements.txt": Skip(
        AWS + " (infra/smoke_test.py calls it)"
    ),
    "sam logs --stack-name livekit-agents-dev --tail": Skip(AWS),
    "aws sns create-topic --name livekit-agents-alarms --query TopicArn --output text": Skip(AWS),
    "sam delete --stack-name livekit-agents-dev": Skip(AWS),
    "VPC=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true "
    "--query 'Vpcs[0].VpcId' --output text)": Skip(AWS),
    "aws sts get-caller-identity": Skip(AWS),
    "sam list stack-outputs --stack-name livekit-agents-dev": Skip(AWS),
    "sam build": Skip(AWS),
    "sam build … && sam deploy …": Skip(AWS),
    "aws secretsmanager delete-secret": Skip(AWS),
    "aws ecr delete-repository --force": Skip(AWS),
    "make infra-lint": Elsewhere("`make test` runs it"),
    "make lock": Skip("rewrites the committed locks with newer versions: a maintainer's step"),
    "make lock LOCK_ARGS=": Skip(
        "rewrites the locks (~1 min against PyPI); tests/infra/test_locks.py checks them"
    ),
    # --- agent_container/README.md
    "docker build -f agent_container/Dockerfile -t livekit-agent .": Skip(DOCKER),
    ".venv/bin/python bench/bench_log_rate_limit.py": Elsewhere("`make bench` runs it (bench/run.py); ~12 s"),
    "make test-agent": Elsewhere("`make test` runs it"),
    # --- docs/
    "make capacity": Elsewhere("minutes; `make bench-smoke` runs the model small (bench/capacity.py)"),
    "PYTHONPATH=functions .venv/bin/python -m sim.capacity --rooms 100000": Elsewhere(
        "what `make capacity` runs (above)"
    ),
    'python -c "import boto3"': Elsewhere("bench/cold_start.py runs it beside every measurement"),
    ".venv/bin/python bench/cold_start.py --runs 8 --tree <the commit before>/functions --tree functions": (
        Elsewhere("a comparison with another checkout, minutes; `make bench-smoke` runs the bench")
    ),
    "aws lambda list-versions-by-function --function-name <fn>": Skip(AWS),
    "aws lambda delete-function --function-name <fn> --qualifier <n>": Skip(AWS),
    "sam local": Skip(DOCKER),
    "docker history": Skip(DOCKER),
    "docker image inspect": Skip(DOCKER),
    "python -m livekit.agents download-files": Skip(
        "runs inside the image build (agent_container/Dockerfile)"
    ),
    "aws ecs describe-tasks": Skip(AWS),
}


def _first_command(block: str) -> str:
    for line in block.splitlines():
        command = re.sub(r"\s+#(\s.*)?$", "", line).strip()
        if command and not command.startswith("#"):
            return re.sub(r"\s+", " ", command)
    raise AssertionError(f"a shell block without a command: {block!r}")


def doc_commands() -> dict[str, tuple[str, str]]:
    """Each command of the docs -> (file, the whole block or span to run)."""
    found: dict[str, tuple[str, str]] = {}
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        for block in _SHELL_BLOCK.finditer(text):
            found.setdefault(_first_command(block.group(1)), (where, block.group(1)))
        for span in _SPAN.finditer(_ANY_BLOCK.sub("", text)):
            command = " ".join(span.group(1).split())
            if (command.startswith(_COMMAND_WORDS) or command.endswith(".sh")) and not command.endswith("/"):
                found.setdefault(command, (where, command))
    return found


def test_every_command_in_the_docs_is_listed_with_how_it_is_checked() -> None:
    found = doc_commands()

    unlisted = sorted(
        f"{where}: {command}" for command, (where, _) in found.items() if command not in COMMANDS
    )
    gone = sorted(command for command in COMMANDS if command not in found)
    assert not unlisted, (
        "commands in the docs with no entry in COMMANDS (run, elsewhere or skip):\n" + "\n".join(unlisted)
    )
    assert not gone, "entries whose command is no longer in the docs:\n" + "\n".join(gone)


def clean_env(**extra: str) -> dict[str, str]:
    """A newcomer's shell: no AWS configuration, no PYTHONPATH, .venv not activated."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LKCTL_", "LIVEKIT_", "VIRTUAL_ENV")) and key != "PYTHONPATH"
    }
    path = [part for part in env.get("PATH", "").split(os.pathsep) if Path(part) != VENV_BIN]
    return {
        **env,
        "PATH": os.pathsep.join(path),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "200",
        **extra,
    }


@pytest.fixture(scope="module")
def local_stack() -> Iterator[dict[str, str]]:
    """``make dev`` as the README runs it (on free ports): the shell the lkctl entries run in."""
    process = subprocess.Popen(
        ["make", "--no-print-directory", "dev", "ARGS=--port 0 --simulator-port 0 --simulator"],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        while line and not line.startswith("{"):
            line = process.stdout.readline()
        assert line, f"make dev did not start: {process.communicate(timeout=30)[1]}"
        info = json.loads(line)
        yield clean_env(
            PATH=f"{VENV_BIN}{os.pathsep}{clean_env()['PATH']}",
            VIRTUAL_ENV=str(ROOT / ".venv"),
            LKCTL_URL=info["api_url"],
            LIVEKIT_SIM_URL=info["simulator_url"],
            LKCTL_DEV="1",
        )
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


RUNS = [(command, entry) for command, entry in COMMANDS.items() if isinstance(entry, Run)]


@pytest.mark.parametrize(("command", "entry"), RUNS, ids=[command for command, _ in RUNS])
def test_the_command_runs_as_written(command: str, entry: Run, request: pytest.FixtureRequest) -> None:
    if command == "make dev":
        request.getfixturevalue("local_stack")  # it started, and printed where everything is
        return
    env = request.getfixturevalue("local_stack") if entry.shell == "lkctl" else clean_env()
    script = doc_commands()[command][1]

    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )

    output = done.stdout + done.stderr
    outcomes = dict([(entry.exit_code, entry.says), *([entry.or_else] if entry.or_else else [])])
    assert "Traceback" not in output, output
    assert done.returncode in outcomes, output
    assert outcomes[done.returncode] in output, output
