"""The README's settings table names every setting the functions read, with its default."""

from __future__ import annotations

import re
from pathlib import Path

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
