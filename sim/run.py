"""One run: a policy over a trace in the world, measured."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sim.model import WorldConfig
from sim.policies import POLICIES, PolicyAdapter
from sim.report import PolicyResult, measure
from sim.traces import Trace
from sim.world import World


def quiet_core() -> None:
    """The core logs every room transition: millions of lines a simulated day, none needed here."""
    logging.disable(logging.CRITICAL)


def simulate(
    trace: Trace,
    policy: PolicyAdapter | str,
    config: WorldConfig | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> tuple[World, PolicyResult]:
    """Play ``trace`` through ``policy`` (an adapter, or its name in ``POLICIES``)."""
    adapter = POLICIES[policy]() if isinstance(policy, str) else policy
    world = World(trace, adapter, config)
    ledger = world.run(progress)
    return world, measure(adapter.name, trace, ledger, adapter.worker, adapter.service_tasks)
