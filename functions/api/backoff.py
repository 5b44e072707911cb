"""LiveKit calls made for an API request, retried after 1 s, 2 s and 4 s.

Only ``LiveKitUnavailable`` is retried: the gateway raises it for 5xx answers, 429 and
transport failures or timeouts, and nothing was changed. A refusal (4xx) is final. Every call
retried here is safe to repeat: CreateRoom returns the open room, and ``reconcile`` is
level-triggered. A retry that would not fit in the invocation's remaining time is not started,
so the caller still answers 503 before API Gateway gives up on the request (30 s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from control_plane.ports import LiveKitUnavailable

T = TypeVar("T")

RETRY_DELAYS_SECONDS: Sequence[float] = (1.0, 2.0, 4.0)
# What one more attempt may need: the LiveKit gateway's timeout plus the AWS calls around it.
ATTEMPT_BUDGET_SECONDS = 8.0

log = logging.getLogger(__name__)
sleep = time.sleep  # replaced in tests


def with_livekit_retries(
    call: Callable[[], T],
    *,
    what: str,
    time_left: Callable[[], float] | None = None,
    delays: Sequence[float] = RETRY_DELAYS_SECONDS,
) -> T:
    """``call()``, retried on ``LiveKitUnavailable`` after each of ``delays``; the last failure
    is raised. ``time_left`` (seconds) stops retrying when another attempt would not fit."""
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            return call()
        except LiveKitUnavailable as error:
            if delay is None:
                raise
            if time_left is not None and time_left() < delay + ATTEMPT_BUDGET_SECONDS:
                log.warning("LiveKit unavailable; no time left to retry", extra={"what": what})
                raise
            log.warning(
                "LiveKit unavailable; retrying",
                extra={"what": what, "attempt": attempt, "delay_seconds": delay, "error": str(error)},
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
