"""JSON lines on stdout (CloudWatch via awslogs), behind the shared log rate limiter.

Job processes forward their records to the worker process, which hands them to the root
logger's handlers: one limiter sees every line the task writes.
"""

from __future__ import annotations

import logging
import sys

from livekit.agents.cli.log import JsonFormatter

from control_plane.log_rate_limit import RateLimitedHandler


def configure_logging(level: str, lines_per_second: float) -> RateLimitedHandler:
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(JsonFormatter())
    limited = RateLimitedHandler(stdout, lines_per_second=lines_per_second)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(limited)
    root.setLevel(level)
    return limited
