"""``lkctl dev`` with a livekit-server found on this machine: it starts the server on 127.0.0.1
with its webhooks pointed at the stack, and Ctrl-C leaves no process and no port behind.
Skipped, saying how to build one, when there is no server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from livekit.api import ListRoomsRequest, LiveKitAPI

from local.livekit_server import find_server, missing_reason
from local.stack.template import ROOT

STOP_SECONDS = 30


def descendants(pid: int) -> set[int]:
    """Every living process under ``pid``, read from /proc."""
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), set()) - found:
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def port_free(url: str) -> bool:
    """Whether a new server could listen there (as servers do, past connections in TIME_WAIT)."""
    parts = urlsplit(url)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((parts.hostname or "127.0.0.1", parts.port or 80))
        except OSError:
            return False
    return True


@pytest.mark.skipif(find_server() is None, reason=missing_reason())
def test_lkctl_dev_runs_the_real_server_and_stops_leaving_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}"}
    command = [sys.executable, "-c", "from cli.main import main; main()", "dev", "--port", "0"]
    command += ["--log-dir", str(tmp_path)]
    dev = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert dev.stdout is not None
        info = json.loads(dev.stdout.readline())
        assert info["simulator_url"] is None and info["livekit_url"].startswith("ws://127.0.0.1:")
        server_pid = info["livekit_server_pid"]
        assert server_pid in descendants(dev.pid)
        http_url = info["livekit_url"].replace("ws://", "http://")
        with urllib.request.urlopen(http_url, timeout=5) as answer:
            assert answer.status == 200

        async def rooms() -> int:
            async with LiveKitAPI(http_url, info["livekit_api_key"], info["livekit_api_secret"]) as api:
                return len((await api.room.list_rooms(ListRoomsRequest())).rooms)

        assert asyncio.run(rooms()) == 0, "the stack's key and secret are the server's"
        config = json.loads(next(Path(info["livekit_server_log"]).parent.glob("*.yaml")).read_text())
        assert config["webhook"]["urls"] == [info["webhook_url"]]
        # Rooms it opens on a join get what the join API gives (reservation 60 + grace 60 + 10).
        assert config["room"] == {"departure_timeout": 130, "empty_timeout": 130}
        started = descendants(dev.pid)
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()
            raise

    assert dev.returncode == 0, dev.stderr.read() if dev.stderr else ""
    deadline = time.monotonic() + 5
    while (left := [pid for pid in started if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"processes left behind: {left}"
    assert port_free(info["livekit_url"]) and port_free(info["api_url"])
