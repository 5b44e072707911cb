"""API Gateway's HTTP API on 127.0.0.1: the IAM authorizer, the payload 2.0 event, the handler.

What it does is what the stack's API does before and around the API function, so a client (the
``lkctl`` CLI) can be tested end to end over real HTTP: a request without a valid SigV4
signature (service ``execute-api``, the one set of credentials this gateway knows, its Region)
gets API Gateway's 403 and never reaches the handler; a signed one becomes the event API Gateway
would send, and the handler's answer goes back as the HTTP response. The signature is checked by
recomputing it with botocore over exactly the headers the client signed. What the handler prints
(its logs and EMF metrics) goes to ``logs``, as Lambda's goes to CloudWatch, never to the client's
terminal; one request runs at a time, as one Lambda container would run them.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import io
import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from local.fixtures import LambdaContext

SERVICE = "execute-api"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)
# API Gateway's own answers when its IAM authorizer refuses a request.
FORBIDDEN = "Forbidden"
BAD_KEY = "The security token included in the request is invalid."
BAD_REGION = "Credential should be scoped to a valid region."
BAD_SIGNATURE = "The request signature we calculated does not match the signature you provided."

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class LocalHttpApi:
    def __init__(
        self, handler: Handler, credentials: Credentials | ReadOnlyCredentials, region: str = "us-east-1"
    ) -> None:
        self._handler = handler
        self._credentials = credentials
        self._region = region
        self.refused: list[str] = []
        self.logs = io.StringIO()
        self._invoke = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the gateway first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LocalHttpApi:
        gateway = self

        class Request(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway._serve(self)

            def do_POST(self) -> None:
                gateway._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read the CLI's output, not the server's."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-http-api", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- one request ----------------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in request.headers.items()}
        denied = self._authorize(request.command, request.path, headers, body)
        if denied is not None:
            self.refused.append(denied)
            self._reply(
                request, 403, {"content-type": "application/json"}, json.dumps({"message": denied}).encode()
            )
            return
        event = _event(request.command, request.path, headers, body)
        with self._invoke, contextlib.redirect_stdout(self.logs):
            result = self._handler(event, LambdaContext())
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        self._reply(request, int(result["statusCode"]), dict(result.get("headers") or {}), raw)

    def _authorize(self, method: str, target: str, headers: dict[str, str], body: bytes) -> str | None:
        """None if API Gateway's IAM authorizer would let the request through, else its message."""
        found = _AUTHORIZATION.match(headers.get("authorization", ""))
        if found is None or "x-amz-date" not in headers:
            return FORBIDDEN
        if found["key"] != self._credentials.access_key:
            return BAD_KEY
        if found["region"] != self._region or found["service"] != SERVICE:
            return BAD_REGION
        signed = found["signed"].split(";")
        if any(name not in headers for name in signed):
            return BAD_SIGNATURE
        copy = AWSRequest(
            method=method,
            url=f"http://{headers['host']}{target}",
            data=body,
            headers={name: headers[name] for name in signed},
        )
        copy.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(self._credentials, SERVICE, self._region)
        expected = signer.signature(signer.string_to_sign(copy, signer.canonical_request(copy)), copy)
        return None if hmac.compare_digest(expected, found["signature"]) else BAD_SIGNATURE

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def _event(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The HTTP API payload 2.0 event for one request (the path stays percent-encoded)."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    text_body = body.decode("utf-8", "replace")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = text_body
    return event
