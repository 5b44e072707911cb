"""Container health check: ``python -m agent_worker.healthcheck`` exits 0 when the worker's
HTTP health endpoint answers 200 (it answers 503 once livekit-agents gives up on LiveKit).

Used by the Dockerfile ``HEALTHCHECK`` and by the ECS task definition's ``healthCheck``.
Reads only ``HEALTH_PORT`` so it stays cheap and works without the worker's secrets.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 8081
PATH = "/"


def healthy(port: int, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(0 if healthy(int(os.environ.get("HEALTH_PORT", DEFAULT_PORT))) else 1)
