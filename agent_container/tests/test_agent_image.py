"""What can be checked of the image without a Docker engine: the files it copies are enough
to run the worker, and the Dockerfile keeps the promises ECS relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

AGENT_CONTAINER = Path(__file__).resolve().parent.parent
REPO_ROOT = AGENT_CONTAINER.parent
DOCKERFILE = (AGENT_CONTAINER / "Dockerfile").read_text()


def build_app_dir(app: Path) -> None:
    """Lay out /app as the Dockerfile does: its control_plane files, then agent_worker."""
    (app / "control_plane").mkdir(parents=True)
    for source in re.findall(r"functions/control_plane/\S+\.py", DOCKERFILE):
        shutil.copy(REPO_ROOT / source, app / "control_plane")
    shutil.copytree(AGENT_CONTAINER / "agent_worker", app / "agent_worker")


def run_in_app(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(app), "HEALTH_PORT": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=app, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_copied_files_are_all_the_worker_imports(tmp_path: Path) -> None:
    build_app_dir(tmp_path)

    imported = run_in_app(
        tmp_path,
        "-c",
        "import agent_worker.main, agent_worker.session, control_plane;"
        f"assert control_plane.__file__.startswith({str(tmp_path)!r})",
    )

    assert imported.returncode == 0, imported.stderr


def test_the_health_check_command_fails_when_nothing_answers(tmp_path: Path) -> None:
    build_app_dir(tmp_path)

    assert run_in_app(tmp_path, "-m", "agent_worker.healthcheck").returncode == 1


def test_the_dockerfile_keeps_what_ecs_relies_on() -> None:
    assert "FROM python:3.12-slim" in DOCKERFILE
    assert re.search(r"^USER agent$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", DOCKERFILE, re.MULTILINE)
    assert '"python", "-m", "agent_worker.healthcheck"' in DOCKERFILE
    assert 'CMD ["python", "-m", "agent_worker"]' in DOCKERFILE
    assert "requirements-test" not in DOCKERFILE
