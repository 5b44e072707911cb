"""Everything ``lkctl dev`` and ``make demo`` start, in order, and stop in reverse: moto (or a real
account's table and queue), the control plane's HTTP API (its URL is LiveKit's webhook URL), the
LiveKit simulator, or a livekit-server of this machine (bound to 127.0.0.1, its webhooks to the
stack, the real agent worker with the keyless ``AGENT_PIPELINE=echo``), or nothing for your own
LiveKit server, then the rest of the local stack.
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from local.livekit_server import LiveKitServer, ServerConfig
from local.livekit_sim import LiveKitSimulator
from local.stack.aws import AwsResources, MotoServer, provision_moto, use_account
from local.stack.stack import LiveKitTarget, LocalStack, StackOptions
from local.stack.template import load
from local.stack.timeline import Timeline

SIMULATOR_API_KEY = "devkey"
KEYLESS_PIPELINE = {"AGENT_PIPELINE": "echo"}  # the real worker without provider keys


@dataclass(frozen=True)
class RealLiveKit:
    """A LiveKit server of your own (``livekit-server --dev``: ``ws://localhost:7880``, key
    ``devkey``, secret ``secret``) whose webhooks you point at the stack."""

    url: str
    api_key: str
    api_secret: str


@dataclass(frozen=True)
class AccountResources:
    """A deployed stack's table and timer queue, reached with your AWS credentials."""

    table_name: str
    queue_url: str
    region: str | None = None


class DevSession:
    def __init__(
        self,
        options: StackOptions,
        timeline: Timeline,
        *,
        livekit: RealLiveKit | None = None,
        account: AccountResources | None = None,
        simulator_port: int = 0,
        server: Path | None = None,
    ) -> None:
        """``server``: a livekit-server binary to run instead of the simulator (not with ``livekit``)."""
        assert livekit is None or server is None, "your LiveKit or ours, not both"
        if server is not None:
            options = replace(options, settings=KEYLESS_PIPELINE | options.settings)
        self.options = options
        self.timeline = timeline
        self._server_binary = server
        self._livekit = livekit
        self._account = account
        self._simulator_port = simulator_port
        self._running = ExitStack()
        self.moto: MotoServer | None = None
        self.simulator: LiveKitSimulator | None = None
        self.server: LiveKitServer | None = None
        self.stack: LocalStack | None = None
        self.target: LiveKitTarget | None = None

    def start(self) -> DevSession:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        api_key = self._livekit.api_key if self._livekit else SIMULATOR_API_KEY
        api_secret = self._livekit.api_secret if self._livekit else secrets.token_urlsafe(32)
        self.moto = MotoServer().start()
        self._running.callback(self.moto.stop)
        aws = self._aws(self.moto.url, api_key, api_secret)
        stack = self.stack = LocalStack(aws, self.options, self.timeline)
        self._running.callback(stack.stop)
        stack.listen()
        if self._server_binary is not None:
            departure, empty = stack.room_defaults()
            room = {"departure_timeout": departure, "empty_timeout": empty}
            config = ServerConfig(api_key, api_secret, [stack.webhook_url], room=room)
            self.server = LiveKitServer(self._server_binary, config, log_dir=self.options.log_dir).start()
            self._running.callback(self.server.stop)
            self._running.callback(stack.stop)  # again, to run first: agents leave a live server
            self.target = LiveKitTarget(self.server.url, api_key, api_secret)
        elif self._livekit is None:
            self.simulator = LiveKitSimulator(
                api_key=api_key,
                api_secret=api_secret,
                webhook_url=stack.webhook_url,
                port=self._simulator_port,
                room_defaults=stack.room_defaults(),
            ).start()
            self._running.callback(self.simulator.stop)
            self._running.callback(stack.stop)  # again, to run first: workers leave a live simulator
            self.target = LiveKitTarget(
                self.simulator.url, api_key, api_secret, simulator_url=self.simulator.url
            )
        else:
            self.target = LiveKitTarget(self._livekit.url, api_key, api_secret)
        stack.start(self.target)

    def stop(self) -> None:
        """The stack and its tasks first (their workers leave the simulator or the server), then
        the simulator or the server, then moto."""
        self._running.close()

    def __enter__(self) -> DevSession:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        """The first line ``lkctl dev`` prints: where everything is."""
        assert self.stack is not None and self.target is not None, "start the session first"
        return {
            "webhook_url": self.stack.webhook_url,
            "api_url": self.stack.api_url,
            "simulator_url": self.simulator.url if self.simulator else None,
            "livekit_url": self.target.url,
            "livekit_api_key": self.target.api_key,
            "livekit_api_secret": self.target.api_secret,
            "livekit_server_pid": self.server.pid if self.server else None,
            "livekit_server_log": str(self.server.log_path) if self.server else None,
        }

    def _aws(self, moto_url: str, api_key: str, api_secret: str) -> AwsResources:
        if self._account is None:
            assert self.moto is not None
            self.moto.reset()
            return provision_moto(moto_url, load(), api_key, api_secret)
        return use_account(
            moto_url,
            self._account.table_name,
            self._account.queue_url,
            api_key,
            api_secret,
            region=self._account.region,
        )
