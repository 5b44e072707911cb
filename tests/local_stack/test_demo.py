"""``make demo`` tells the true story: its summary holds, and says so in its exit code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local import demo
from tests.local_stack.conftest import GRACE_SECONDS


def test_the_demo_session_keeps_one_agent_and_leaves_nothing_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = demo.main(grace_seconds=GRACE_SECONDS, log_dir=tmp_path)

    out = capsys.readouterr().out
    assert code == 0, out
    summary = out[out.index("\nSummary") :]
    figures = dict(re.findall(r"^  (\S.*?)\s{2,}(\d+(?:\.\d+)?)\b", summary, re.MULTILINE))
    assert figures["agents started"] == "1"
    assert figures["duplicate agents (most in the room at once, less one)"] == "0"
    assert float(figures["idle agent-seconds beyond grace"]) <= demo.IDLE_ALLOWANCE_SECONDS
    assert figures["dispatches left"] == "0"
    assert figures["tasks left running"] == "0"
    assert int(figures["webhooks LiveKit sent twice (answered duplicate)"]) >= 1
    assert "-> 200 duplicate" in out, "the copy LiveKit sent again was answered as a duplicate"
    assert "The summary holds." in out


def test_the_summary_is_wrong_when_an_agent_outstays_the_grace_period() -> None:
    tally = demo.Tally(most_agents=1, idle_beyond_grace=demo.IDLE_ALLOWANCE_SECONDS + 1)

    lines, ok = demo.summary(tally, started=1)

    assert not ok
    assert any("idle agent-seconds beyond grace" in line and "WRONG" in line for line in lines)
