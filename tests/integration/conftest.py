"""Handlers in-process against moto (AWS) and the fake LiveKit Twirp server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from control_plane import composition
from tests.fakes.livekit_fixtures import fake_livekit  # noqa: F401  (fixture)
from tests.fakes.livekit_server import FakeLiveKitServer
from tests.localstack import LocalAws, provision


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, fake_livekit: FakeLiveKitServer) -> Iterator[LocalAws]:  # noqa: F811
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        local = provision(fake_livekit)
        for key, value in local.env.items():
            monkeypatch.setenv(key, value)
        composition.reset()
        yield local
        composition.reset()
