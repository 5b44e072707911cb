"""The locks (issue 21): every install is pinned and hashed, and each lock is of what its source asks.

``make lock`` writes them with uv; these tests read them as pip will: a requirement line per
package, ``name==version`` and one or more ``--hash``. pip in hash-checking mode then refuses any
file whose hash is not listed and any package the lock does not pin, so two builds a month apart
install the same bytes.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# lock -> (the Python it is installed on, the sources it locks)
LOCKS = {
    "functions/requirements.txt": ("3.12", ["functions/requirements.in"]),
    "agent_container/requirements.txt": ("3.12", ["agent_container/requirements.in"]),
    "agent_container/requirements-test.txt": (
        "3.12",
        ["agent_container/requirements.in", "agent_container/requirements-test.in"],
    ),
    "requirements-dev.txt": ("3.11", ["pyproject.toml"]),
    "infra/requirements-infra.txt": ("3.11", ["infra/requirements-infra.in"]),
    "requirements-pip.txt": ("3.11", ["requirements-pip.in"]),
}
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;]+)(\s*;\s*(?P<marker>.*?))?(\s+--hash=sha256:[0-9a-f]{64})+$"
)


def pins(lock: str, python: str) -> dict[str, str]:
    """``name -> version`` of a lock as pip installs it on Linux with ``python``, failing on any
    line that is not pinned and hashed."""
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    found = {}
    for raw in (ROOT / lock).read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"{lock}: not pinned with hashes: {line[:120]}"
        if match["marker"] is None or Marker(match["marker"]).evaluate(environment):
            found[canonicalize_name(match["name"])] = match["version"]
    return found


def wanted(source: str) -> list[Requirement]:
    path = ROOT / source
    if path.name == "pyproject.toml":
        project = tomllib.loads(path.read_text(encoding="utf-8"))
        return [
            Requirement(line)
            for line in project["project"]["dependencies"] + project["dependency-groups"]["dev"]
        ]
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_pins_what_its_sources_ask_with_hashes(lock: str) -> None:
    python, sources = LOCKS[lock]
    locked = pins(lock, python)

    for source in sources:
        for requirement in wanted(source):
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{lock} does not pin {name} ({source} asks for it)"
            assert requirement.specifier.contains(locked[name], prereleases=True), (
                f"{lock} pins {name}=={locked[name]}, outside {source}'s {requirement.specifier}"
            )
    assert "make lock" in (ROOT / lock).read_text(encoding="utf-8"), "says how it is refreshed"


@pytest.mark.parametrize(
    ("lock", "held_to"),
    [
        ("requirements-dev.txt", "functions/requirements.txt"),
        ("agent_container/requirements-test.txt", "agent_container/requirements.txt"),
    ],
)
def test_tests_run_on_the_versions_that_ship(lock: str, held_to: str) -> None:
    """On the runtime's Python (3.12), the test venvs install the versions that ship."""
    locked, shipped = pins(lock, "3.12"), pins(held_to, "3.12")

    differ = {name: (locked[name], shipped[name]) for name in locked.keys() & shipped.keys()}
    assert {name: pair for name, pair in differ.items() if pair[0] != pair[1]} == {}


@pytest.mark.parametrize(
    ("file", "install"),
    [
        ("Makefile", "pip install --quiet --require-hashes -r requirements-dev.txt"),
        ("Makefile", "pip install --quiet --require-hashes -r agent_container/requirements-test.txt"),
        ("Makefile", "pip install --quiet --require-hashes -r infra/requirements-infra.txt"),
        ("agent_container/Dockerfile", "pip install --require-hashes -r /tmp/requirements.txt"),
    ],
)
def test_installs_check_the_hashes(file: str, install: str) -> None:
    assert install in (ROOT / file).read_text(encoding="utf-8")


def test_every_install_the_makefile_runs_is_hashed_pip_included() -> None:
    """Each ``pip install`` is from a lock with hashes, pip's own upgrade too; only the project
    itself is installed without (``--no-deps -e .``: its dependencies are in the lock)."""
    installs = [
        line.split("pip install", 1)[1]
        for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
        if "pip install" in line and not line.lstrip().startswith("#")
    ]

    assert len(installs) >= 6
    for install in installs:
        assert "--require-hashes -r " in install or "--no-deps -e ." in install, install
    assert sum("-r $(PIP_LOCK)" in install for install in installs) == 3, "one per virtual environment"
