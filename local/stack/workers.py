"""What a local agent task runs: the simulator's lightweight worker, or the real agent worker.

Both get what the task definition and RunTask give the container in AWS (table, timer queue,
agent name, slots, grace, the task ARN the metadata endpoint would report) plus this machine's
AWS endpoint; the real agent also gets every other variable of this environment, so its LiveKit,
Deepgram and LLM keys come from where you ran ``lkctl dev``.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from local.stack.template import ROOT

AGENT_VENV_PYTHON = ROOT / ".venv-agent" / "bin" / "python"
SIM_WORKER_MODULE = "local.stack.sim_worker"
AGENT_MODULE = "agent_worker"


@dataclass(frozen=True)
class SimWorkerProgram:
    simulator_url: str
    env: dict[str, str]
    """The task definition's environment, shared by every task."""

    def command(self, task_arn: str) -> tuple[list[str], dict[str, str]]:
        env = (
            _base_env()
            | self.env
            | {
                "SIMULATOR_URL": self.simulator_url,
                "LOCAL_STACK_PID": str(os.getpid()),
                "PYTHONPATH": _python_path(ROOT / "agent_container", ROOT / "functions", ROOT),
            }
        )
        return [sys.executable, "-m", SIM_WORKER_MODULE], env


@dataclass(frozen=True)
class AgentWorkerProgram:
    """``python -m agent_worker`` from ``agent_container``, in ``.venv-agent`` when there is one."""

    livekit_url: str
    api_key: str
    api_secret: str
    env: dict[str, str]
    python: Path = AGENT_VENV_PYTHON

    def command(self, task_arn: str) -> tuple[list[str], dict[str, str]]:
        env = (
            dict(os.environ)
            | _base_env()
            | self.env
            | {
                "LIVEKIT_URL": self.livekit_url,
                "LIVEKIT_API_KEY": self.api_key,
                "LIVEKIT_API_SECRET": self.api_secret,
                "HEALTH_PORT": str(_free_port()),  # one per task: they share this machine
                "PYTHONPATH": _python_path(ROOT / "agent_container", ROOT / "functions"),
            }
        )
        python = self.python if self.python.exists() else Path(sys.executable)
        return [str(python), "-m", AGENT_MODULE], env


def _base_env() -> dict[str, str]:
    """What any Python process needs from this one's environment to run at all."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {name: os.environ[name] for name in keep if name in os.environ} | {"PYTHONUNBUFFERED": "1"}


def _python_path(*paths: Path) -> str:
    return os.pathsep.join(str(path) for path in paths)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
