"""Where every benchmark leaves its figures: ``bench/results/<name>.json`` (git-ignored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures as JSON and say where, so a reader finds them after the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    print(f"figures written to {path.relative_to(RESULTS.parent.parent)}")
    return path
