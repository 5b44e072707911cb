"""A real livekit-server on this machine: find (or build) the binary, write its config, start and stop it.

Found, in this order: ``LIVEKIT_SERVER`` (a path), ``livekit-server`` on ``PATH`` (``brew install
livekit``, LiveKit's install script), then our own build cached outside the clone by version
(``build_server`` makes it, as ``BUILD_COMMAND`` does; Go's module and build caches live under
``~/`` too, so CI's fresh clones build it once). The server runs with ``--dev`` bound to one
address (127.0.0.1 unless told: the e2e tier gives its namespace's address and fixed ports), on
free ports unless told, with a generated config: our API key and secret, the webhook URLs, and
``rtc.use_external_ip: false`` so ICE offers only that address.

    with LiveKitServer(find_server(), api_key="devkey", api_secret=secret, webhook_urls=[url]) as lk:
        LiveKitAPI(lk.http_url, "devkey", secret)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

VERSION = "v1.13.5"
ENV_VAR = "LIVEKIT_SERVER"
ON_PATH = "livekit-server"
CACHE_DIR = Path.home() / ".cache" / "livekit-server" / VERSION
CACHED_BINARY = CACHE_DIR / "server"  # `go install .../cmd/server` names it after its package
MODULE = "github.com/livekit/livekit-server/cmd/server"
BUILD_COMMAND = f"GOBIN={CACHE_DIR} go install {MODULE}@{VERSION}"
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"
"""The keys ``--dev`` installs."""
READY_SECONDS = 30.0
STOP_SECONDS = 10.0


class ServerNotFound(LookupError):
    """``LIVEKIT_SERVER`` names no executable (said rather than silently using another server), or
    there is no server and none could be built (the message says why)."""


def find_server(
    env: Mapping[str, str] | None = None, *, cached: Path = CACHED_BINARY, on_path: str | None = None
) -> Path | None:
    """The livekit-server to run, or None when there is none (see ``BUILD_COMMAND``)."""
    env = os.environ if env is None else env
    if explicit := env.get(ENV_VAR):
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerNotFound(f"{ENV_VAR}={explicit} is not an executable file")
        return path
    found = on_path if on_path is not None else shutil.which(ON_PATH, path=env.get("PATH"))
    if found:
        return Path(found)
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    return None


def build_server(target: Path = CACHED_BINARY) -> Path:
    """``go install`` the server into ``target``'s directory, for when ``find_server`` finds none."""
    go = next((found for name in GO_CANDIDATES if (found := shutil.which(name))), None)
    if go is None:
        raise ServerNotFound(
            "no livekit-server and no Go to build one: install Go, or set LIVEKIT_SERVER "
            "(or put livekit-server on PATH)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / "staging"
    env = os.environ | {"GOBIN": str(staging), "CGO_ENABLED": "0"}
    print(f"building livekit-server {VERSION} into {target.parent} (once; later runs reuse it)", flush=True)
    done = subprocess.run([go, "install", f"{MODULE}@{VERSION}"], env=env, check=False)
    if done.returncode != 0 or not (staging / "server").exists():
        raise ServerNotFound(f"go install {MODULE}@{VERSION} failed (exit {done.returncode})")
    (staging / "server").replace(target)  # whole or not at all: an interrupted build leaves no binary
    staging.rmdir()
    return target


def missing_reason() -> str:
    """One line for a skipped test or a fallback: where we looked and how to get one."""
    return (
        f"no livekit-server ({ENV_VAR} unset, no {ON_PATH} on PATH, nothing at {CACHED_BINARY}); "
        f"build it with: {BUILD_COMMAND}"
    )


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ServerConfig:
    """What the generated config says; ports of 0 are chosen free at ``LiveKitServer.start``."""

    api_key: str
    api_secret: str
    webhook_urls: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = 0
    rtc_tcp_port: int = 0
    rtc_udp_port: int = 0
    room: Mapping[str, object] = field(default_factory=dict)  # e.g. {"departure_timeout": 20}

    def document(self) -> dict[str, object]:
        """The YAML config as data (JSON is YAML, so it is written with ``json``)."""
        config: dict[str, object] = {
            "port": self.port,
            "bind_addresses": [self.host],
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "udp_port": self.rtc_udp_port,
                "use_external_ip": False,
                "node_ip": self.host,
            },
            "keys": {self.api_key: self.api_secret},
            "logging": {"level": "info", "json": True},
        }
        if self.webhook_urls:
            config["webhook"] = {"api_key": self.api_key, "urls": list(self.webhook_urls)}
        if self.room:
            config["room"] = dict(self.room)
        return config


class LiveKitServer:
    """One livekit-server process; its JSON log goes to ``log_path``. Stop leaves no process."""

    def __init__(self, binary: Path, config: ServerConfig, *, log_dir: Path | None = None) -> None:
        self.binary = binary
        self.config = config
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="livekit-server-", dir=log_dir))
        self.log_path = self._dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def url(self) -> str:
        """``LIVEKIT_URL`` for clients and agent workers."""
        return f"ws://{self.config.host}:{self.config.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> LiveKitServer:
        host = self.config.host
        self.config = ServerConfig(
            **{
                **self.config.__dict__,
                "port": self.config.port or free_port(host),
                "rtc_tcp_port": self.config.rtc_tcp_port or free_port(host),
                "rtc_udp_port": self.config.rtc_udp_port or free_port(host, socket.SOCK_DGRAM),
            }
        )
        config_path = self._dir / "livekit.yaml"
        config_path.write_text(json.dumps(self.config.document(), indent=2))
        command = [str(self.binary), "--dev", "--config", str(config_path), "--bind", host, "--node-ip", host]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (the server closes its rooms, sending their webhooks), SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"livekit-server exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.http_url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"livekit-server did not answer on {self.http_url} in {READY_SECONDS:g} s")

    def __enter__(self) -> LiveKitServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
