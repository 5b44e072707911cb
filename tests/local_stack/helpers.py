"""Waiting for the stack, and looking for what it might leave behind."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from local.livekit_sim import SimState, SimulatorClient
from local.livekit_sim.models import ParticipantKind, RoomInfo

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """The first truthy answer of ``probe``, asked every 0.1 s for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def room(state: SimState, name: str) -> RoomInfo | None:
    return next((r for r in state.rooms if r.name == name), None)


def agents_in(sim: SimulatorClient, name: str) -> int:
    found = room(sim.state(), name)
    return 0 if found is None else sum(p.kind is ParticipantKind.AGENT for p in found.participants)


def dispatches_in(sim: SimulatorClient, name: str) -> int:
    """Our dispatches: LiveKit's own "any agent" one (an empty agent name) lives with the room."""
    found = room(sim.state(), name)
    return 0 if found is None else sum(1 for d in found.dispatches if d.agent_name)


def child_pids() -> set[int]:
    """Processes whose parent is this one (from /proc)."""
    me = os.getpid()
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0
