"""One local stack for the module's tests: moto, the LiveKit simulator, the functions and local
agent tasks, with a short grace period and a quick sweep so a whole session takes seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack.session import DevSession
from local.stack.stack import StackOptions
from local.stack.timeline import Timeline

GRACE_SECONDS = 2
# Workers drain for a second at most when the stack stops, and write their record every second
# (5 s for both by default).
FAST_WORKERS = {"DRAIN_TIMEOUT_SECONDS": "1", "HEARTBEAT_SECONDS": "1"}


def stack_options(tmp_path_factory: pytest.TempPathFactory, **overrides: object) -> StackOptions:
    values: dict[str, object] = {
        "grace_seconds": GRACE_SECONDS,
        "sweep_interval_seconds": 2.0,
        "log_dir": tmp_path_factory.mktemp("local-stack"),
        "task_stop_timeout_seconds": 3.0,
        "settings": FAST_WORKERS,
    }
    return StackOptions(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevSession]:
    with DevSession(stack_options(tmp_path_factory), Timeline()) as session:
        yield session
