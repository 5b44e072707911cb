"""The scheduled sweep: the backstop that finds what webhooks, timers and task events missed.

Every minute it reads only what is active — our ECS tasks, the sparse index (rooms that are not
settled, live workers), LiveKit's room list — then:

1. stops tasks nobody owns, whose worker went silent or never became ready, idle ones beyond
   the warm pool, and agents past the maximum age; learns how claimed tasks that vanished
   stopped (a missed task event) and treats them like the event would;
2. per room, in name order from a cursor: fixes missed joins and leaves from ListParticipants,
   closes rooms LiveKit no longer has, cleans our agent's dispatches (duplicates, dead ones,
   leftovers in rooms nobody is in), and calls the same ``reconcile`` every trigger uses.

A listing that fails makes the sweep skip what depends on it, so nothing is deleted or stopped
on the strength of a listing it does not have; the failure is logged and counted and the next
sweep tries again. The fan-out is asyncio with a semaphore on one event loop (the LiveKit
gateway's, kept across warm invocations). Blocking calls — DynamoDB, ECS, ``reconcile`` itself —
run in a thread pool of the same size, and their LiveKit calls are bridged back onto that loop.
The sweep starts no new room once the Lambda's remaining time falls below the safety margin and
leaves the cursor there, so the next sweep starts with the rooms this one did not reach.

At scale the sweep is split into groups (``SWEEP_GROUPS``, :mod:`control_plane.sweeper.fan_out`):
each sweeps the rooms of its attention shards; the lead group also does step 1 and the rooms
nobody tracks (docs/architecture.md, "Sharded index, fanned-out sweep").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control_plane.sweeper.plan import SweepPolicy

if TYPE_CHECKING:
    from control_plane.sweeper.run import Sweeper, SweepReport

__all__ = ["SweepPolicy", "SweepReport", "Sweeper"]


def __getattr__(name: str) -> Any:
    """The run (asyncio, threads, the controller) loads only when a sweep needs it: settings
    import the policy, and the webhook's cold start should not pay for the rest."""
    if name in ("Sweeper", "SweepReport"):
        from control_plane.sweeper import run

        return getattr(run, name)
    raise AttributeError(name)
