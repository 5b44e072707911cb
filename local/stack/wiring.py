"""Where the local runner replaces ECS: the ports the functions build in ``composition``.

``composition.ports`` builds every adapter from settings, the ECS runner included. Here it is
wrapped so the ports it returns run agent tasks with the local runner; everything else (the
DynamoDB store, the SQS timers, the LiveKit gateway) stays the real adapter. The wrapper also
keeps one set of ports per function (``composition`` keeps one, which is all a Lambda container
needs but would rebuild them whenever two functions in this process take turns).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

from aws_lambda_powertools import Metrics

from control_plane import composition
from control_plane.ports import AgentRunner, Ports


def use_runner(runner: AgentRunner) -> Callable[[], None]:
    """Make the functions' ports use ``runner``; returns what undoes it."""
    build = composition.ports
    lock = threading.Lock()

    @cache
    def ports(metrics: Metrics) -> Ports:
        with lock:  # boto3's default session is not safe to build clients from at once
            built = build.__wrapped__(metrics)
        built.runner = runner
        return built

    composition.ports = ports
    composition.reset()

    def restore() -> None:
        composition.ports = build
        composition.reset()

    return restore
