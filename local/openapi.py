"""Writes the API's OpenAPI document to ``docs/openapi.json`` (or the path given): ``make openapi``.

A command of its own, so :mod:`api.spec` (which the handler imports) never imports the handler.
"""

from __future__ import annotations

import sys
from pathlib import Path

from api import spec
from handlers.api import app


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else spec.COMMITTED
    target.write_text(spec.document(app) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
