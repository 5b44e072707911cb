"""Run every benchmark in this folder and print its figures (``make bench``); not part of the tests.

``--smoke`` (``make bench-smoke``, run by ``make test``): every benchmark at a size of seconds,
judged only on having run and written its figures (``bench/results/<name>.smoke.json``), so a
change that breaks a benchmark is red at once. The full run keeps the goals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import figures  # noqa: E402

# Needs root, a network namespace and livekit-server, so `make test` (which runs the smoke sizes)
# would fail on most machines: .ci/run runs its smoke size as `make bench-e2e JOINS=3` after
# `make e2e` instead.
OUTSIDE_SMOKE = frozenset({"e2e_latency"})


def benchmarks() -> list[Path]:
    return [
        script for script in sorted(HERE.glob("*.py")) if script.stem not in ("run", "figures", "__init__")
    ]


def run(script: Path, smoke: bool) -> str | None:
    """Run one benchmark; what went wrong, or None."""
    env = {**os.environ, figures.SMOKE_ENV: "1"} if smoke else dict(os.environ)
    started = time.time()
    finished = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, env=env, check=False)
    took = time.time() - started
    print(f"({script.stem}: {took:.1f} s)", flush=True)
    if finished.returncode != 0:
        return f"{script.name} exited {finished.returncode}"
    if smoke:
        written = [p for p in figures.RESULTS.glob("*.smoke.json") if p.stat().st_mtime >= started - 1]
        if not written:
            return f"{script.name} wrote no bench/results/<name>.smoke.json"
    return None


def main(argv: list[str]) -> int:
    smoke = "--smoke" in argv
    failures = []
    for script in benchmarks():
        if smoke and script.stem in OUTSIDE_SMOKE:
            print(f"== {script.stem}: not in the smoke run (make bench-e2e JOINS=3 in .ci/run)", flush=True)
            continue
        print(f"== {script.stem}{' (smoke)' if smoke else ''}", flush=True)
        problem = run(script, smoke)
        if problem:
            failures.append(problem)
    for problem in failures:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
