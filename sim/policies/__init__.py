"""The policies compared, by name: each a small adapter over the same world.

The warm-pool work adds its rows (``warm_1``, ``warm_2``, ``adaptive``) here, as ``DefaultPolicy``
with other settings or as adapters of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.policies.always_on import AlwaysOnPolicy
from sim.policies.base import PolicyAdapter
from sim.policies.default import DefaultPolicy
from sim.policies.manager_gc import ManagerGcPolicy
from sim.policies.self_terminating import SelfTerminatingPolicy
from sim.policies.ttl_sweep import TtlSweepPolicy

POLICIES: dict[str, Callable[[], PolicyAdapter]] = {
    "default": DefaultPolicy,
    "ttl_sweep": TtlSweepPolicy,
    "self_terminating": SelfTerminatingPolicy,
    "manager_gc": ManagerGcPolicy,
    "always_on": AlwaysOnPolicy,
}

__all__ = ["POLICIES", "PolicyAdapter"]
