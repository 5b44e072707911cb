"""The README's settings table names every setting the worker reads, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from agent_worker.settings import AgentSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def documented_settings() -> set[str]:
    section = README.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))


def test_the_settings_table_is_the_settings_the_worker_reads() -> None:
    read = {
        (field.validation_alias if isinstance(field.validation_alias, str) else name).upper()
        for name, field in AgentSettings.model_fields.items()
    }
    assert documented_settings() == read
