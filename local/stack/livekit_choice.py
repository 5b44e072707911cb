"""Which LiveKit ``lkctl dev`` runs against: your own (``--livekit-url``), the simulator when asked
(``--simulator``), else a livekit-server found on this machine (``local/livekit_server.py``), else
the simulator with one line saying why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from local.livekit_server import find_server, missing_reason


class ConflictingChoice(ValueError):
    pass


@dataclass(frozen=True)
class LiveKitChoice:
    url: str | None = None
    """Your LiveKit server: nothing is started for it."""
    server: Path | None = None
    """A livekit-server binary to start on this machine."""
    fallback: str | None = None
    """Why the simulator runs although it was not asked for; None otherwise."""

    @property
    def simulator(self) -> bool:
        return self.url is None and self.server is None


def choose_livekit(
    livekit_url: str | None, force_simulator: bool, find: Callable[[], Path | None] = find_server
) -> LiveKitChoice:
    """``find`` raises ``ServerNotFound`` for a ``LIVEKIT_SERVER`` that names no executable: a
    server you pointed at is never silently replaced by the simulator."""
    if livekit_url and force_simulator:
        raise ConflictingChoice("--livekit-url and --simulator exclude each other")
    if livekit_url:
        return LiveKitChoice(url=livekit_url)
    if force_simulator:
        return LiveKitChoice()
    binary = find()
    if binary is None:
        return LiveKitChoice(fallback=f"using the LiveKit simulator: {missing_reason()}")
    return LiveKitChoice(server=binary)
