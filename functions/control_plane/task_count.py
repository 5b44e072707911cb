"""``MAX_TASKS`` as a hard cap: the live-task count every Lambda shares, pure rules, no I/O.

Each Lambda used to compare its own worker listing with ``MAX_TASKS`` and launch: twenty first
joins at once each saw room for one more and launched twenty tasks. So a launch first counts
itself in one shared item, ``pk = LIMITER#tasks`` beside the launch limiter's, by a conditional
write that keeps the count at most ``MAX_TASKS``, and only then calls ``RunTask``.

The count is a map, not a number, so every step is idempotent and a count that drifts heals:

- a launch is counted under its *key* (the room's launch token, or ``<pool token>#<i>`` for
  the i-th task of a pool ``RunTask``): a retry with the same token is not counted twice;
- once ``RunTask`` answers, the keys are replaced by the task ARNs (:func:`confirmed`), so the
  task's STOPPED event, delivered twice or not, removes it (:func:`released`); a refused launch
  removes its keys at once;
- the sweep rebuilds the map from ECS's listing (:func:`healed`): listed tasks are counted, and
  an entry ECS does not list is kept only for :data:`UNLISTED_GRACE_SECONDS` (a launch in flight,
  a task ListTasks does not show yet), so a lost STOPPED event or a Lambda that died between
  counting and ``RunTask`` holds a place for two minutes at most.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

TASK_COUNT_PK = "LIMITER#tasks"
# How long an entry ECS does not list is kept: RunTask's latency and ListTasks' lag behind it.
UNLISTED_GRACE_SECONDS = 120.0


def counted(
    live: Mapping[str, float], keys: Sequence[str], max_tasks: int, now: float
) -> tuple[dict[str, float], list[str]]:
    """The keys that may launch (in order: those counted already, then new ones while the count
    stays at most ``max_tasks``) and the map with the new ones counted at ``now``."""
    after = dict(live)
    granted: list[str] = []
    for key in keys:
        if key in after:
            granted.append(key)
        elif len(after) < max_tasks:
            after[key] = now
            granted.append(key)
    return after, granted


def confirmed(
    live: Mapping[str, float], keys: Sequence[str], task_arns: Sequence[str], now: float
) -> dict[str, float]:
    """The launches under ``keys`` started ``task_arns``: counted by ARN from now on. Keys with
    no task (ECS started fewer) are dropped."""
    after = {key: at for key, at in live.items() if key not in keys}
    after.update({arn: now for arn in task_arns})
    return after


def released(live: Mapping[str, float], keys: Collection[str]) -> dict[str, float]:
    """Without these keys or task ARNs (a refused launch, a stopped task); absent ones are fine."""
    return {key: at for key, at in live.items() if key not in keys}


def healed(live: Mapping[str, float], listed: Collection[str], now: float) -> dict[str, float]:
    """Rebuilt from ECS's listing of our tasks meant to run: every listed task counted, and an
    entry ECS does not list kept only while it is younger than :data:`UNLISTED_GRACE_SECONDS`."""
    after = {key: at for key, at in live.items() if key in listed or now - at < UNLISTED_GRACE_SECONDS}
    after.update({arn: now for arn in listed if arn not in after})
    return after


def count_item(live: Mapping[str, float], version: int) -> dict[str, Any]:
    """The one item, the same in DynamoDB and in the twin: no ``attention``, no ``expires_at``."""
    return {"pk": TASK_COUNT_PK, "live": dict(live), "version": version}


def count_state(item: Mapping[str, Any]) -> tuple[dict[str, float], int]:
    return {key: float(at) for key, at in item.get("live", {}).items()}, int(item["version"])
