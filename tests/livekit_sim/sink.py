"""A webhook endpoint on 127.0.0.1 for the simulator's tests: it records every POST and answers
the statuses queued in ``answers`` first (a status, or a status and headers), then 200. Its
request threads are joined on close."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.webhook import WebhookEvent


@dataclass(frozen=True)
class Received:
    body: bytes
    authorization: str
    content_type: str
    status: int

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verified(self, api_key: str, api_secret: str) -> WebhookEvent:
        """The event, through livekit-api's own receiver: raises unless the signature holds."""
        return WebhookReceiver(TokenVerifier(api_key, api_secret)).receive(
            self.body.decode(), self.authorization
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close joins the request threads: none outlives the sink


class WebhookSink:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[int | tuple[int, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the sink first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/livekit/webhook"

    def __enter__(self) -> WebhookSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    answer = sink.answers.popleft() if sink.answers else 200
                    status, headers = answer if isinstance(answer, tuple) else (answer, {})
                    sink.received.append(
                        Received(
                            body,
                            self.headers.get("Authorization", ""),
                            self.headers.get("Content-Type", ""),
                            status,
                        )
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="webhook-sink"
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first ``count`` requests, once that many arrived."""
        wait_until(lambda: len(self.received) >= count, timeout, f"{count} webhook(s)")
        with self._lock:
            return list(self.received)

    def events(self, count: int) -> list[tuple[str, str]]:
        """``(event, participant identity)`` of the first ``count`` requests."""
        return [
            (r.json["event"], r.json.get("participant", {}).get("identity", "")) for r in self.wait_for(count)
        ]


def wait_until(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
