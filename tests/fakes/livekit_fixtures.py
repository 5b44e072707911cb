"""Pytest fixture for the fake LiveKit server (tests/conftest.py makes it available everywhere)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.livekit_sim import FakeLiveKitServer


@pytest.fixture
def fake_livekit() -> Iterator[FakeLiveKitServer]:
    """A running fake LiveKit on 127.0.0.1 with empty state; ``.state`` is its InMemoryLiveKit."""
    with FakeLiveKitServer() as server:
        yield server
