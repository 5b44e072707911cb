"""Which LiveKit ``lkctl dev`` runs against, and where a livekit-server is found: pure choices,
no process started."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from local.livekit_server import BUILD_COMMAND, ServerConfig, ServerNotFound, find_server
from local.stack.livekit_choice import ConflictingChoice, LiveKitChoice, choose_livekit
from local.stack.session import DevSession
from local.stack.stack import StackOptions
from local.stack.timeline import Timeline


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_livekit_server_env_var_comes_first(tmp_path: Path) -> None:
    mine = executable(tmp_path / "mine" / "livekit-server")
    cached = executable(tmp_path / "cache" / "server")

    found = find_server({"LIVEKIT_SERVER": str(mine)}, cached=cached, on_path="/usr/bin/livekit-server")

    assert found == mine


def test_a_livekit_server_env_var_naming_no_executable_is_an_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "livekit-server"
    not_executable.write_text("")

    for named in (not_executable, tmp_path / "missing"):
        with pytest.raises(ServerNotFound, match="is not an executable file"):
            find_server({"LIVEKIT_SERVER": str(named)}, cached=tmp_path / "none")


def test_then_path_then_our_cached_build(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    on_path = executable(bin_dir / "livekit-server")
    cached = executable(tmp_path / "cache" / "server")

    assert find_server({"PATH": str(bin_dir)}, cached=cached) == on_path
    assert find_server({"PATH": str(tmp_path / "empty")}, cached=cached) == cached
    assert find_server({"PATH": str(tmp_path / "empty")}, cached=tmp_path / "none") is None


def test_dev_runs_a_found_server_else_the_simulator_saying_why_in_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "server"

    assert choose_livekit(None, False, find=lambda: binary) == LiveKitChoice(server=binary)
    fallback = choose_livekit(None, False, find=lambda: None)
    assert fallback.simulator and fallback.fallback is not None
    assert "\n" not in fallback.fallback and BUILD_COMMAND in fallback.fallback


def test_simulator_is_forced_and_your_url_wins_over_any_server(tmp_path: Path) -> None:
    def never() -> Path:
        raise AssertionError("nothing is looked for")

    assert choose_livekit(None, True, find=never) == LiveKitChoice()
    assert choose_livekit("ws://lk:7880", False, find=never) == LiveKitChoice(url="ws://lk:7880")
    with pytest.raises(ConflictingChoice):
        choose_livekit("ws://lk:7880", True, find=never)


def test_the_generated_config_binds_one_address_and_sends_webhooks_signed_with_our_key() -> None:
    config = ServerConfig("devkey", "s" * 40, ["http://127.0.0.1:8787/webhook"], port=7880)

    document = json.loads(json.dumps(config.document()))  # JSON is the YAML it is written as

    assert document["bind_addresses"] == ["127.0.0.1"] and document["port"] == 7880
    assert document["keys"] == {"devkey": "s" * 40}
    assert document["webhook"] == {"api_key": "devkey", "urls": ["http://127.0.0.1:8787/webhook"]}
    assert document["rtc"]["use_external_ip"] is False and document["rtc"]["node_ip"] == "127.0.0.1"


def test_with_a_server_the_agent_tasks_run_the_keyless_pipeline_unless_told_otherwise(tmp_path: Path) -> None:
    binary = tmp_path / "server"

    keyless = DevSession(StackOptions(), Timeline(), server=binary)
    told = DevSession(StackOptions(settings={"AGENT_PIPELINE": "voice"}), Timeline(), server=binary)
    simulated = DevSession(StackOptions(), Timeline())

    assert keyless.options.settings["AGENT_PIPELINE"] == "echo"
    assert told.options.settings["AGENT_PIPELINE"] == "voice"
    assert "AGENT_PIPELINE" not in simulated.options.settings
