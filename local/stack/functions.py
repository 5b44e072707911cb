"""The template's Lambda functions in this process: the same handler modules, called with the
events AWS would send them.

Each function runs one invocation at a time, as one warm container would; different functions
run at once, as they do in AWS. Their Powertools JSON logs go to a file (what CloudWatch would
hold) and, as readable lines, to the timeline. Anything printed while the stack runs (EMF
metrics, from any thread) goes to that file too: this process's stdout is the functions' log, as
a Lambda's is CloudWatch, so whatever must reach the terminal keeps its own reference to it,
taken before the stack starts (the timeline does). X-Ray is off.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TextIO

from api import wiring as api_wiring
from control_plane import composition
from local.stack.events import LambdaContext
from local.stack.timeline import TimelineLogHandler

Handler = Callable[[dict[str, Any], Any], Any]
# Loggers the handler modules point at stdout (Powertools' handler, copied onto the core's).
SHARED_LOGGERS = ("control_plane", "api")


class Functions:
    def __init__(self, log_file: TextIO, timeline_handler: TimelineLogHandler) -> None:
        self._log_file = log_file
        self._timeline_handler = timeline_handler
        self._modules: dict[str, ModuleType] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._redirected: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
        self._listened: list[logging.Logger] = []
        self._guard = threading.Lock()
        self._terminal: TextIO | None = None

    def load(self, *modules: str) -> None:
        """Import handler modules (once the environment is set: they read it at import), start
        them cold and take over their logs."""
        for name in modules:
            module = importlib.import_module(name)
            _cold_start(module)
            self._modules[name] = module
            self._locks.setdefault(name, threading.Lock())
            service = getattr(module, "logger", None)
            if service is not None:
                self._take_logs(logging.getLogger(service.service))
        for name in SHARED_LOGGERS:
            self._take_logs(logging.getLogger(name))
        if self._terminal is None:  # after the imports: the stdout they keep stays the terminal
            self._terminal, sys.stdout = sys.stdout, self._log_file

    def invoke(self, module: str, event: dict[str, Any], timeout_seconds: float) -> Any:
        """One invocation; raises what the handler raises (as Lambda reports a function error)."""
        handler: Handler = self._modules[module].handler
        context = LambdaContext(function_name=module.rsplit(".", 1)[-1], timeout_seconds=timeout_seconds)
        with self._locks[module]:
            return handler(event, context)

    def close(self) -> None:
        """Forget the functions' clients and give the loggers back their streams (another stack in
        this process takes them again)."""
        for module in self._modules.values():
            _cold_start(module)
        if self._terminal is not None and sys.stdout is self._log_file:
            sys.stdout = self._terminal
        self._terminal = None
        for handler, stream in self._redirected:
            _swap_stream(handler, stream)
        for logger in self._listened:
            logger.removeHandler(self._timeline_handler)
        self._redirected.clear()
        self._listened.clear()

    def _take_logs(self, logger: logging.Logger) -> None:
        with self._guard:
            for handler in logger.handlers:
                already = any(handler is taken for taken, _ in self._redirected)
                if type(handler) is logging.StreamHandler and not already:  # Powertools', not a capture's
                    self._redirected.append((handler, _swap_stream(handler, self._log_file)))
            if self._timeline_handler not in logger.handlers:
                logger.addHandler(self._timeline_handler)
                self._listened.append(logger)


def _cold_start(handler_module: ModuleType) -> None:
    """What a new Lambda container starts without: every cached setting, client and port, in the
    core's composition root, the API's and the handler module itself (a restarted stack may point
    at other resources)."""
    composition.reset()
    for module in (composition, api_wiring, handler_module):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def _swap_stream(handler: logging.StreamHandler[TextIO], stream: TextIO) -> TextIO:
    """``setStream`` without flushing the old stream first: it may be closed already (the stdout a
    handler module kept from its import, when a test captured it then)."""
    with handler.lock or contextlib.nullcontext():
        previous, handler.stream = handler.stream, stream
    return previous


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
