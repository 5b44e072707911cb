"""Every function's cold path (issue 22): settings without pydantic-settings, each handler primed
at init in Lambda without a call to AWS, and the SnapStart hooks that make a restore safe.

bench/cold_start.py measures what these keep in place (docs/cold-start.md).
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

from control_plane import composition
from control_plane.settings import Settings
from handlers import runtime
from local.fixtures import LocalAws
from tests.integration.test_webhook_cold_start import ROOT, fresh_interpreter

HANDLERS = ["webhook", "api", "timer", "sweeper", "task_events"]


def test_settings_load_without_pydantic_settings() -> None:
    loaded = fresh_interpreter(
        "import json, sys, control_plane.settings; print(json.dumps('pydantic_settings' in sys.modules))"
    )
    assert loaded is False


def test_settings_read_the_environment_in_any_case_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRACE_PERIOD_SECONDS", "45")
    monkeypatch.setenv("assign_public_ip", "true")
    monkeypatch.setenv("WARM_TASKS", "2")

    settings = Settings(warm_tasks=3)

    assert (settings.grace_period_seconds, settings.assign_public_ip, settings.warm_tasks) == (45, True, 3)


def test_a_bad_setting_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPACITY_PROVIDER", "EC2")

    with pytest.raises(ValueError, match="FARGATE or FARGATE_SPOT"):
        Settings()


@pytest.mark.parametrize("handler", HANDLERS)
def test_in_lambda_every_handler_builds_its_clients_at_init_without_calling_aws(
    aws: LocalAws, handler: str
) -> None:
    code = (
        f"import json, handlers.{handler}\n"
        "from control_plane import composition as c\n"
        "print(json.dumps([c.ports.cache_info().currsize, c.ecs_client()._client is not None,"
        " c.sqs_client()._client is not None, c.secrets_provider.cache_info().currsize]))"
    )
    unreachable = "http://127.0.0.1:9"  # init must not call AWS: this endpoint answers nothing
    built = fresh_interpreter(
        code, LAMBDA_TASK_ROOT=str(ROOT / "functions"), AWS_ENDPOINT_URL=unreachable, **aws.env
    )
    assert built == [1, True, True, 1]


@pytest.mark.parametrize("handler", HANDLERS)
def test_every_handler_registers_the_after_restore_hook(tmp_path: Path, handler: str) -> None:
    """The Lambda runtime ships ``snapshot_restore_py``; a stand-in records registrations."""
    (tmp_path / "snapshot_restore_py.py").write_text(
        textwrap.dedent(
            """
            after = []
            def register_before_snapshot(func, *args, **kwargs):
                return func
            def register_after_restore(func, *args, **kwargs):
                after.append(f"{func.__module__}.{func.__name__}")
                return func
            """
        )
    )
    hooks = fresh_interpreter(
        f"import json, handlers.{handler}, snapshot_restore_py as s; print(json.dumps(s.after))",
        extra_path=tmp_path,
    )
    assert hooks == ["handlers.runtime.after_restore"]


def test_after_restore_forgets_the_secret_and_the_livekit_session_and_reseeds_random(aws: LocalAws) -> None:
    composition.livekit_credentials()
    gateway = composition.livekit_gateway()
    gateway.list_rooms()  # opens the HTTP session on its loop
    random.seed(7)
    snapshot_draw = random.random()
    random.seed(7)

    runtime.after_restore()

    assert composition.secrets_provider().store == {}
    assert gateway._loop is None  # closed: the next call opens a new session
    assert random.random() != snapshot_draw
    assert composition.livekit_credentials() == (aws.livekit.api_key, aws.livekit.api_secret)
    assert json.dumps(gateway.list_rooms(), default=str)  # and LiveKit answers again
