"""Run every benchmark in this folder and print its figures (``make bench``); not part of the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    failures = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name in ("run.py", "__init__.py"):
            continue
        print(f"== {script.stem}", flush=True)
        finished = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)
        failures += finished.returncode != 0
    sys.exit(1 if failures else 0)
