"""Per-call overhead of the log rate limiter: ``.venv/bin/python bench/bench_log_rate_limit.py``.

Measures ``RateLimitedHandler.handle`` on the three paths a line can take (allowed, dropped,
aggregated as a repeat) and subtracts what the wrapped handler costs by itself, so the
number printed is what the limiter adds to each logging call.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import figures
from control_plane.log_rate_limit import RateLimitedHandler

CALLS = 2_000 if figures.smoke() else 200_000


class Discard(logging.Handler):
    """A target that writes nothing, so only the limiter is timed."""

    def emit(self, record: logging.LogRecord) -> None:
        pass


class SteppingClock:
    """Advances a little on every read, like a real clock under a steady stream of lines."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def make_records(distinct: bool) -> list[logging.LogRecord]:
    return [
        logging.LogRecord(
            "bench", logging.INFO, __file__, 1, "job %s heard %d words", ("AJ_x", n if distinct else 0), None
        )
        for n in range(CALLS)
    ]


def nanoseconds_per_call(
    handle: Callable[[logging.LogRecord], object], records: list[logging.LogRecord]
) -> float:
    started = time.perf_counter_ns()
    for record in records:
        handle(record)
    return (time.perf_counter_ns() - started) / len(records)


def main() -> None:
    distinct = make_records(distinct=True)
    same = make_records(distinct=False)
    baseline = nanoseconds_per_call(Discard().handle, distinct)

    allowed = RateLimitedHandler(Discard(), lines_per_second=1e12, clock=SteppingClock(0.001))
    dropped = RateLimitedHandler(Discard(), lines_per_second=1, burst=1, clock=SteppingClock(0.0))
    aggregated = RateLimitedHandler(Discard(), lines_per_second=1e12, clock=SteppingClock(0.0))
    paths = {
        "allowed": nanoseconds_per_call(allowed.handle, distinct),
        "dropped": nanoseconds_per_call(dropped.handle, distinct),
        "aggregated": nanoseconds_per_call(aggregated.handle, same),
    }

    print(f"log rate limiter, {CALLS} calls per path, Python {sys.version.split()[0]}")
    print(f"  wrapped handler alone : {baseline:8.0f} ns/call")
    for path, total in paths.items():
        overhead = total - baseline
        print(
            f"  {path:<22}: {total:8.0f} ns/call total,"
            f" {overhead:8.0f} ns ({overhead / 1000:.2f} µs) overhead"
        )
    figures.write(
        "log_rate_limit",
        {"calls": CALLS, "python": sys.version.split()[0], "baseline_ns": baseline, "paths_ns": paths},
    )


if __name__ == "__main__":
    main()
