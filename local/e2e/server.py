"""The real livekit-server for the e2e tier: found, or built once into a cache outside the clone,
then run with a generated config inside the tier's network namespace.

Where the binary comes from, first match wins: ``LIVEKIT_SERVER`` (a path), ``livekit-server`` on
``PATH`` (``brew install livekit``, LiveKit's install script), the cache
``~/.cache/livekit-server/<version>/server``, or ``go install`` into that cache (Go's module and
build caches live under ``~/`` too, so CI's fresh clones build it once).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml

VERSION = "v1.13.5"
MODULE = "github.com/livekit/livekit-server/cmd/server"
CACHE = Path.home() / ".cache" / "livekit-server"
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"
"""The keys ``--dev`` installs."""
HTTP_PORT = 7880
TCP_PORT = 7881
UDP_PORT = 7882
START_TIMEOUT_SECONDS = 20.0


class ServerUnavailable(RuntimeError):
    """No livekit-server, and none could be built (the message says why)."""


def find_server(version: str = VERSION, *, build: bool = True) -> Path:
    """The livekit-server binary to run; builds ``version`` into the cache if none is found."""
    configured = os.environ.get("LIVEKIT_SERVER")
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise ServerUnavailable(f"LIVEKIT_SERVER={configured} is not an executable file")
        return path
    on_path = shutil.which("livekit-server")
    if on_path:
        return Path(on_path)
    cached = CACHE / version / "server"
    if os.access(cached, os.X_OK):
        return cached
    if not build:
        raise ServerUnavailable(f"no livekit-server: set LIVEKIT_SERVER, put one on PATH, or build {cached}")
    return _build(version, cached)


def _build(version: str, target: Path) -> Path:
    go = next((found for name in GO_CANDIDATES if (found := shutil.which(name))), None)
    if go is None:
        raise ServerUnavailable(
            "no livekit-server and no Go to build one: install Go, or set LIVEKIT_SERVER "
            "(or put livekit-server on PATH)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / "staging"
    env = os.environ | {"GOBIN": str(staging), "CGO_ENABLED": "0"}
    print(f"building livekit-server {version} into {target.parent} (once; later runs reuse it)", flush=True)
    done = subprocess.run([go, "install", f"{MODULE}@{version}"], env=env, check=False)
    if done.returncode != 0 or not (staging / "server").exists():
        raise ServerUnavailable(f"go install {MODULE}@{version} failed (exit {done.returncode})")
    (staging / "server").replace(target)  # whole or not at all: an interrupted build leaves no binary
    staging.rmdir()
    return target


@dataclass(frozen=True)
class ServerConfig:
    node_ip: str
    webhook_url: str
    api_key: str = DEV_API_KEY

    def render(self) -> str:
        """livekit-server's YAML: webhooks to the stack, signed with the dev key; media on the
        namespace's address only."""
        return yaml.safe_dump(
            {
                "port": HTTP_PORT,
                "rtc": {"tcp_port": TCP_PORT, "udp_port": UDP_PORT, "use_external_ip": False},
                "webhook": {"api_key": self.api_key, "urls": [self.webhook_url]},
            }
        )


class LiveKitServer:
    """One livekit-server process, ``--dev`` (keys devkey/secret), bound to ``config.node_ip``."""

    def __init__(self, binary: Path, config: ServerConfig, work_dir: Path) -> None:
        self.binary = binary
        self.config = config
        self._work_dir = work_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.config.node_ip}:{HTTP_PORT}"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.node_ip}:{HTTP_PORT}"

    @property
    def log_path(self) -> Path:
        return self._work_dir / "livekit-server.log"

    def start(self) -> LiveKitServer:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self._work_dir / "livekit.yaml"
        config_path.write_text(self.config.render())
        ip = self.config.node_ip
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [str(self.binary), "--dev", "--config", str(config_path), "--bind", ip, "--node-ip", ip],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _listening(ip, HTTP_PORT):
            if self._process.poll() is not None:
                raise ServerUnavailable(
                    f"livekit-server exited {self._process.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerUnavailable(f"livekit-server not listening after {START_TIMEOUT_SECONDS:g}s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LiveKitServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0
