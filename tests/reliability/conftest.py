"""The reliability suite's report plugin (``report.py``), the ``figures`` fixture, and a moto
server whose requests are atomic, as DynamoDB's conditional writes are."""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.reliability.report import PLUGIN_NAME, Figures, ReliabilityReport

SERVER_START_SECONDS = 30


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(ReliabilityReport(config.rootpath), PLUGIN_NAME)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record ``figures.record(scenario, outcome, **numbers)``; printed after the run."""
    report = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(report, ReliabilityReport)
    return report.figures_for(request.node.nodeid)


@pytest.fixture(scope="session")
def moto_server_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """Overrides ``tests/conftest.py``'s server for this folder (``server_aws`` uses it): the same
    moto, one request at a time (``atomic_moto_server.py`` says why). The server binds a free
    port itself and prints it, so two test sessions can never share one server."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.atomic_moto_server"],
        cwd=pytestconfig.rootpath,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], SERVER_START_SECONDS)
    port = process.stdout.readline().strip() if ready else ""
    if not port.isdigit():
        process.kill()
        raise RuntimeError("the atomic moto server did not start")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
