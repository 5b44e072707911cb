"""``make demo`` tells the true story: it runs the real handlers and ends with nothing left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_session_keeps_one_agent_and_cleans_up() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "local" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = run.stdout.splitlines()

    assert any("HTTP 200 duplicate" in line for line in lines)
    states = [line for line in lines if "room " in line and "tasks running" in line]
    assert all("tasks running 0" in s or "tasks running 1" in s for s in states), "never two agents"
    assert all("dispatches 0" in s or "dispatches 1" in s for s in states)
    assert "room grace" in "\n".join(states)
    assert states[-1].split("] ", 1)[1].strip() == "room closed: humans []; tasks running 0; dispatches 0"
