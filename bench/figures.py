"""Where every benchmark leaves its figures: ``bench/results/<name>.json`` (git-ignored).

``make bench-smoke`` runs every benchmark at a size of seconds (``BENCH_SMOKE=1``) only to show
it still runs; its figures go to ``<name>.smoke.json`` so they never replace a full run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_ENV = "BENCH_SMOKE"


def smoke() -> bool:
    """Whether this run is the smoke size (``BENCH_SMOKE=1``): sizes shrink, goals are not judged."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def path_for(name: str) -> Path:
    return RESULTS / (f"{name}.smoke.json" if smoke() else f"{name}.json")


def write(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures as JSON and say where, so a reader finds them after the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = path_for(name)
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    print(f"figures written to {path.relative_to(RESULTS.parent.parent)}")
    return path
