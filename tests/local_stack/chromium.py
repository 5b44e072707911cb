"""Headless Chromium (the Debian package) showing one page, read through the DevTools protocol:
the page stays loaded while a test changes what it shows, so its own polling is what is tested."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from tests.local_stack.helpers import eventually

CHROMIUM = Path("/usr/bin/chromium")
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


class Chromium:
    def __init__(self, url: str, profile: Path) -> None:
        self._url = url
        self._profile = profile
        self._process: subprocess.Popen[bytes] | None = None
        self._page_socket = ""

    def __enter__(self) -> Chromium:
        self._process = subprocess.Popen(
            [str(CHROMIUM), *HEADLESS_FLAGS, f"--user-data-dir={self._profile}", self._url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self._profile / "DevToolsActivePort"
        port = eventually(
            "Chromium's DevTools port", lambda: port_file.exists() and port_file.read_text().split()[0]
        )
        self._page_socket = eventually("the page", lambda: self._page(int(port)))
        loaded = f"location.href.startsWith({json.dumps(self._url)}) && document.readyState === 'complete'"
        eventually("the page loaded", lambda: self.evaluate(loaded))  # not the about:blank before it
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._process is not None
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page, as JSON would carry it."""
        return asyncio.run(self._evaluate(expression))

    async def _evaluate(self, expression: str) -> Any:
        call = {
            "id": 1,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": True},
        }
        async with aiohttp.ClientSession() as session, session.ws_connect(self._page_socket) as socket:
            await socket.send_json(call)
            async for message in socket:
                answer = json.loads(message.data)
                if answer.get("id") == 1:
                    return _value(answer)
        raise RuntimeError("Chromium closed the DevTools connection")

    def _page(self, port: int) -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
            targets = json.load(answer)
        return next(
            (
                t["webSocketDebuggerUrl"]
                for t in targets
                if t["type"] == "page" and t["url"].startswith(self._url)
            ),
            None,
        )


def _value(answer: dict[str, Any]) -> Any:
    if "error" in answer:
        raise RuntimeError(f"DevTools refused the call: {answer['error']}")
    result = answer["result"]
    if "exceptionDetails" in result:
        raise RuntimeError(f"the page threw: {result['exceptionDetails']}")
    return result["result"].get("value")
