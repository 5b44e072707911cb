"""The local stack starts, serves and stops without leaving a process, a thread or a port, and puts
back what it changed in this process (environment, stdout), so another stack starts as it did."""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request

import pytest

from local.livekit_sim import SimulatorClient
from local.stack.session import DevSession
from local.stack.timeline import Timeline
from tests.local_stack.conftest import stack_options
from tests.local_stack.helpers import child_pids, eventually, listening

INFO_KEYS = {
    "webhook_url",
    "api_url",
    "simulator_url",
    "livekit_url",
    "livekit_api_key",
    "livekit_api_secret",
    "livekit_server_pid",
    "livekit_server_log",
}


def test_the_stack_stops_its_tasks_threads_and_ports(tmp_path_factory: pytest.TempPathFactory) -> None:
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    stdout, environment = sys.stdout, dict(os.environ)

    with DevSession(stack_options(tmp_path_factory), Timeline()) as session:
        info = session.info()
        assert set(info) == INFO_KEYS
        assert session.moto is not None
        urls = [info["webhook_url"], info["simulator_url"], session.moto.url]
        sim = SimulatorClient(info["simulator_url"])
        sim.join("lifecycle", "alice")
        eventually("the agent task's process", lambda: child_pids() - children_before)
        with urllib.request.urlopen(info["api_url"] + "rooms/lifecycle") as answer:
            assert json.load(answer)["state"] in ("starting", "active")

    assert child_pids() == children_before
    assert sys.stdout is stdout
    assert dict(os.environ) == environment
    assert not [url for url in urls if listening(url)]
    eventually(
        "the stack's threads to end", lambda: not set(threading.enumerate()) - threads_before or None, 5
    )
