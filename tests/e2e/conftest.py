"""The e2e tier: the real livekit-server, the real agent worker (keyless pipeline) and WebRTC
humans, inside the private network namespace ``make e2e`` makes. Outside it (plain ``make
test``, ``pytest``) every test here is skipped: the tier needs root, the namespace and the
server, and takes minutes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.e2e.netns import NODE_IP_ENV
from local.e2e.world import World, WorldOptions


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(NODE_IP_ENV):
        return
    skip = pytest.mark.skip(reason="e2e tier: run `make e2e` (real livekit-server in a network namespace)")
    for item in items:
        if Path(__file__).parent in Path(str(item.fspath)).parents:
            item.add_marker(skip)


TIMINGS: list[tuple[str, float]] = []


@pytest.fixture
def timings() -> list[tuple[str, float]]:
    """Figures a scenario measured (what, seconds): printed after the run, never asserted."""
    return TIMINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("e2e timings")
        for what, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.2f}s  {what}")


def world_options(tmp_path: Path, **overrides: object) -> WorldOptions:
    return WorldOptions(work_dir=tmp_path, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A fresh server, stack and moto per test: no agent, dispatch or task leaks across tests."""
    with World(world_options(tmp_path)) as started:
        yield started
