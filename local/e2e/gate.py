"""The path LiveKit's webhooks take to the stack, with a switch to lose them: while closed it
answers 503 and forwards nothing, as a stack behind a failing load balancer would."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FORWARDED_HEADERS = ("Authorization", "Content-Type")


class WebhookGate:
    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.open = True
        self.refused = 0
        """Webhooks answered 503 while closed."""
        gate = self

        class Forward(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not gate.open:
                    gate.refused += 1
                    self._reply(503, b"webhooks lost (e2e)")
                    return
                headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers[name]}
                request = urllib.request.Request(gate.upstream, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._reply(answer.status, answer.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, error.read())
                except OSError:
                    self._reply(502, b"stack unreachable")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the stack's timeline shows every webhook."""

        self._host = host
        self._server = ThreadingHTTPServer((host, 0), Forward)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-gate", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}/livekit/webhook"

    def start(self) -> WebhookGate:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
