"""The capacity model at 100,000 rooms (``python -m sim.capacity``, ``make capacity``) as a benchmark.

Runs ``sim.capacity`` and writes its document where every benchmark leaves its figures:
``bench/results/capacity.json``, or with ``BENCH_SMOKE=1`` (``make bench-smoke``) a 150-room day
of two rows to ``capacity.smoke.json``, so the model cannot rot unnoticed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from bench import figures
from sim import capacity

SMOKE_ARGS = ("--simulated-rooms", "150", "--rows", "default,pooled_8")


def main() -> int:
    args = ["--out", str(figures.path_for("capacity"))]
    return capacity.main([*args, *SMOKE_ARGS] if figures.smoke() else args)


if __name__ == "__main__":
    sys.exit(main())
