"""The README's settings table names every setting the functions read, with its default; the
cold-start figures it and docs/cold-start.md quote are bench/results/cold_start.json's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from control_plane.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
NO_DEFAULT = "\N{EN DASH}"  # what the table shows for a setting the deployment must provide


def readme_settings() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README.read_text(), flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_every_setting_is_documented_with_its_default() -> None:
    documented = readme_settings()
    for name, field in Settings.model_fields.items():
        env = name.upper()
        assert env in documented, f"{env} missing from the README settings table"
        default = field.default
        shown = documented[env].strip("`")
        if default in ("", None):
            assert shown == NO_DEFAULT, f"{env}: README shows {shown!r}, code has no default"
        elif isinstance(default, bool):
            assert shown == str(default).lower()
        else:
            assert float(shown) == float(default) if isinstance(default, int | float) else shown == default


def test_no_undocumented_leftovers() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert set(readme_settings()) <= fields, "README documents settings the code does not read"


COLD_START = README.parent / "bench" / "results" / "cold_start.json"
COLD_START_DOC = README.parent / "docs" / "cold-start.md"
QUOTED_RUNS = 5  # fewer is a smoke run (make bench-smoke), not the figures the docs quote


def _quoted_cold_start_rows(text: str, functions: list[str], suffix: str) -> list[str]:
    names = "|".join(map(re.escape, functions))
    pattern = rf"^\| `(?:{names})`{re.escape(suffix)} \|.*\|$"
    return re.findall(pattern, text, flags=re.MULTILINE)


def test_cold_start_figures_in_readme_and_docs_are_the_benchmarks() -> None:
    from bench.cold_start import markdown_rows

    figures = json.loads(COLD_START.read_text())
    if figures["runs"] < QUOTED_RUNS:
        pytest.skip("bench/results/cold_start.json holds a smoke run: run python bench/cold_start.py")
    functions = list(figures["trees"]["functions"])
    now = markdown_rows(figures["trees"]["functions"])
    assert _quoted_cold_start_rows(README.read_text(), functions, "") == now
    doc = COLD_START_DOC.read_text()
    assert _quoted_cold_start_rows(doc, functions, "") == now
    [before] = [tree for label, tree in figures["trees"].items() if label != "functions"]
    assert _quoted_cold_start_rows(doc, functions, " (before)") == markdown_rows(before, " (before)")
    assert f"median of {figures['runs']} runs" in doc
