"""Fixtures shared by every test folder: moto (in-process or as a server) plus the fake LiveKit."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from moto import mock_aws

from control_plane import composition
from local.fixtures import LocalAws, provision
from local.livekit_sim import FakeLiveKitServer
from tests.fakes.livekit_fixtures import fake_livekit  # noqa: F401  (fixture)


def _use(monkeypatch: pytest.MonkeyPatch, endpoint_url: str | None = None) -> None:
    """Point boto3 at moto (its in-process mock, or a server) with throwaway credentials."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    if endpoint_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)


def _deploy(monkeypatch: pytest.MonkeyPatch, livekit: FakeLiveKitServer) -> LocalAws:
    """Create the stack's resources and give the functions their environment, as SAM would."""
    local = provision(livekit)
    for key, value in local.env.items():
        monkeypatch.setenv(key, value)
    composition.reset()
    return local


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, fake_livekit: FakeLiveKitServer) -> Iterator[LocalAws]:  # noqa: F811
    _use(monkeypatch)
    with mock_aws():
        yield _deploy(monkeypatch, fake_livekit)
        composition.reset()


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """A moto server in its own process: real HTTP, real threads, like AWS across Lambdas."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("moto server did not start")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def server_aws(
    monkeypatch: pytest.MonkeyPatch,
    moto_server_url: str,
    fake_livekit: FakeLiveKitServer,  # noqa: F811
) -> Iterator[LocalAws]:
    urllib.request.urlopen(urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")).close()
    _use(monkeypatch, moto_server_url)
    yield _deploy(monkeypatch, fake_livekit)
    composition.reset()
