"""The deployed HTTP API's routes on 127.0.0.1, in front of the same handlers.

Each request that matches a route of the template becomes the API Gateway HTTP API (payload 2.0)
event that route would send its function: route key, path parameters, query string, headers, and
the body as text or base64 as API Gateway decides by content type (LiveKit's
``application/webhook+json`` arrives base64-encoded). The function's answer goes back as the
HTTP response. Routes behind the API's IAM authorizer are served without checking SigV4: only the
deployed stack's API Gateway enforces it. Anything else gets API Gateway's 404.

Besides the API: ``GET /`` is the live page and ``GET /_local/state`` the JSON it polls
(``?room=NAME`` adds the detail of the room the page shows).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.stack.events import http_api_event, is_text
from local.stack.template import Route
from local.stack.timeline import Timeline

Invoke = Callable[[str, dict[str, Any], float], Any]
STATE_PATH = "/_local/state"
NOT_FOUND = json.dumps({"message": "Not Found"}).encode()
INTERNAL_ERROR = json.dumps({"message": "Internal Server Error"}).encode()
WEBHOOK_PATH = "/livekit/webhook"


class _Server(ThreadingHTTPServer):
    """One thread per request, joined when the server closes: no invocation outlives the stack."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class LocalHttpApi:
    def __init__(
        self,
        routes: Sequence[Route],
        invoke: Invoke,
        timeline: Timeline,
        page: bytes,
        state: Callable[[str | None], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._routes = list(routes)
        self._invoke = invoke
        self._timeline = timeline
        self._page = page
        self._state = state
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the API first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None, "start the API first"
        return int(self._server.server_address[1])

    def start(self) -> None:
        api = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: no thread waits on an idle one

            def do_GET(self) -> None:
                api._serve(self)

            def do_POST(self) -> None:
                api._serve(self)

            def do_PUT(self) -> None:
                api._serve(self)

            def do_DELETE(self) -> None:
                api._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the timeline says what came in."""

        self._server = _Server(self._address, Request)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-http-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
        self._server = self._thread = None

    # --- one request ----------------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        parts = urlsplit(request.path)
        if request.command == "GET" and parts.path == "/":
            _reply(request, HTTPStatus.OK, {"content-type": "text/html; charset=utf-8"}, self._page)
            return
        if request.command == "GET" and parts.path == STATE_PATH:
            state = json.dumps(self._state(_query(parts.query).get("room") or None)).encode()
            _reply(
                request,
                HTTPStatus.OK,
                {"content-type": "application/json", "cache-control": "no-store"},
                state,
            )
            return
        for route in self._routes:
            parameters = route.match(request.command, parts.path)
            if parameters is not None:
                self._call(request, route, parameters, parts.query, body)
                return
        _reply(request, HTTPStatus.NOT_FOUND, {"content-type": "application/json"}, NOT_FOUND)

    def _call(
        self,
        request: BaseHTTPRequestHandler,
        route: Route,
        parameters: dict[str, str],
        query: str,
        body: bytes,
    ) -> None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        event = http_api_event(
            body,
            headers,
            path=urlsplit(request.path).path,
            method=request.command,
            base64_encoded=bool(body) and not is_text(headers.get("content-type")),
            route_key=route.route_key,
            path_parameters={name: unquote(value) for name, value in parameters.items()},
            query_string=query,
            query=_query(query),
        )
        if not body:
            event.pop("body")
        try:
            result = self._invoke(route.module, event, route.timeout_seconds)
        except Exception as error:  # API Gateway answers 500 when the integration fails
            self._timeline.emit("http", f"{route.route_key}: function error {error!r}")
            _reply(
                request,
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"content-type": "application/json"},
                INTERNAL_ERROR,
            )
            return
        status = int(result["statusCode"])
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        headers_out = {name: str(value) for name, value in (result.get("headers") or {}).items()}
        room = parameters.get("room")
        self._timeline.emit(
            "webhook" if route.path == WEBHOOK_PATH else "api",
            _describe(route, body, status, raw),
            unquote(room) if room else _webhook_room(route, body),
        )
        _reply(request, status, headers_out, raw, result.get("cookies") or [])


def _query(query: str) -> dict[str, str]:
    """API Gateway's ``queryStringParameters``: repeated names joined with commas."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values[name] = f"{values[name]},{value}" if name in values else value
    return values


def _reply(
    request: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    body: bytes,
    cookies: Sequence[str] = (),
) -> None:
    request.send_response(status)
    for name, value in headers.items():
        if name.lower() != "content-length":
            request.send_header(name, value)
    for cookie in cookies:
        request.send_header("set-cookie", cookie)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def _webhook_room(route: Route, body: bytes) -> str | None:
    """The room a webhook is about (None for anything else, or a body that is not JSON)."""
    if route.path != WEBHOOK_PATH:
        return None
    try:
        name = (json.loads(body).get("room") or {}).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _describe(route: Route, body: bytes, status: int, answer: bytes) -> str:
    """``participant_joined alice (PA_x) in demo: 200 applied`` for a webhook, the route and the
    status for an API call."""
    try:
        answered = json.loads(answer)
        outcome = str(answered.get("outcome") or answered.get("error") or "")
    except (ValueError, AttributeError):
        outcome = ""
    if route.path != WEBHOOK_PATH:
        return f"{route.route_key} -> {status}"
    try:
        event = json.loads(body)
    except ValueError:
        return f"unreadable body -> {status} {outcome}"
    what = event.get("event", "?")
    participant = event.get("participant") or {}
    who = f" {participant.get('identity', '?')} ({participant.get('sid', '?')})" if participant else ""
    room = (event.get("room") or {}).get("name", "?")
    return f"{what}{who} in {room} -> {status} {outcome}".rstrip()
