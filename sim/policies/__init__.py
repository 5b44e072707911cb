"""The policies compared, by name: each a small adapter over the same world.

``default``, ``warm_1``, ``warm_2`` and ``adaptive`` are this project (the real core) with the
warm pool off (``WARM_TASKS=0``), one or two warm workers, or sized adaptively; the others are
the seed policies and an always-on fleet.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.policies.always_on import AlwaysOnPolicy
from sim.policies.default import Adaptive, DefaultPolicy, PooledEight, PooledFour, WarmOne, WarmTwo
from sim.policies.manager_gc import ManagerGcPolicy
from sim.policies.self_terminating import SelfTerminatingPolicy
from sim.policies.ttl_sweep import TtlSweepPolicy
from sim.world import PolicyAdapter

POLICIES: dict[str, Callable[[], PolicyAdapter]] = {
    "default": DefaultPolicy,
    "warm_1": WarmOne,
    "warm_2": WarmTwo,
    "adaptive": Adaptive,
    "pooled_4": PooledFour,
    "pooled_8": PooledEight,
    "ttl_sweep": TtlSweepPolicy,
    "self_terminating": SelfTerminatingPolicy,
    "manager_gc": ManagerGcPolicy,
    "always_on": AlwaysOnPolicy,
}

OUR_POLICIES = ("default", "warm_1", "warm_2", "adaptive", "pooled_4", "pooled_8")
"""The rows that run this project's core: the goals about it hold for each of them."""
WARM_ROWS = ("warm_1", "warm_2", "adaptive", "pooled_4", "pooled_8")
"""The rows with a warm pool."""

__all__ = ["OUR_POLICIES", "POLICIES", "WARM_ROWS", "PolicyAdapter"]
