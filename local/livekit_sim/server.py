"""An aiohttp application served from its own event loop in a daemon thread.

The Twirp-only fake and the whole simulator both run this way, so the caller's thread stays
free to drive them: ``start`` returns once the socket listens on 127.0.0.1 (a free port unless
one is given); ``stop`` closes the socket, runs the app's cleanup (its background tasks end
there), joins the executor and the thread and closes the loop, so no port or thread outlives it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web

STOP_TIMEOUT_SECONDS = 10.0


class BackgroundServer:
    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._name = name
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, app: web.Application) -> None:
        """Bind and serve ``app``; its startup hooks have run when this returns."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self._host, self._port, backlog=4096)
            loop.run_until_complete(site.start())
        except BaseException:
            loop.run_until_complete(runner.cleanup())
            loop.close()
            raise
        self._port = runner.addresses[0][1]
        self._loop, self._runner = loop, runner
        self._thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
        self._thread.start()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the server's loop (from any thread); nothing happens once stopped."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Idempotent: a server never started, or stopped already, is left as it is."""
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or runner is None or thread is None:
            return
        self._loop = self._runner = self._thread = None
        asyncio.run_coroutine_threadsafe(_shutdown(runner), loop).result(timeout=STOP_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=STOP_TIMEOUT_SECONDS)
        loop.close()


async def _shutdown(runner: web.AppRunner) -> None:
    await runner.cleanup()
    await asyncio.get_running_loop().shutdown_default_executor()
