"""Worker items a slot decision reads, before the slot index and now.

``.venv/bin/python bench/slot_decisions.py [--smoke]`` (``--smoke``, or ``BENCH_SMOKE=1`` as
``bench/run.py --smoke`` sets it: 10 and 100 workers only).

A table of N live workers (all but a warm pool busy) and a first join's slot decision on the
in-memory twin, which counts the worker items each read returns (``worker_items_read``) as
DynamoDB would return them. Before: every decision listed every live worker (``live_workers``,
N items; the N² that bound the project near 2,900 rooms). Now: the room's own task if any, one
bounded query of one slot index shard (``control_plane.slot_index``), the reserve. Goal: at
most 3 items per decision with a warm pool, whatever N. Writes ``bench/results/slot_decisions.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import figures
from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.adapters.memory.runtime import (
    InMemoryMetrics,
    InMemoryRunner,
    InMemoryTimers,
    VirtualClock,
)
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.adapters.memory.task_count import InMemoryTaskCount
from control_plane.capacity import Capacity
from control_plane.pool import PoolPolicy
from control_plane.ports import ObservedTaskState, Ports
from control_plane.worker_protocol import WorkerRecord, WorkerStatus

if "--smoke" in sys.argv:
    os.environ[figures.SMOKE_ENV] = "1"
SIZES = (10, 100) if figures.smoke() else (10, 100, 1_000, 10_000)
WARM = 4
DECISIONS = 20
GOAL_ITEMS = 3
POLICY = PoolPolicy(warm_tasks=WARM, slots_per_task=1, jobs_per_task=4, max_tasks=100_000)


def worker(store: InMemoryStore, arn: str, now: float, busy: bool) -> None:
    """A task launched, registered and ready, with its one slot taken if ``busy``."""
    store.record_task_state(ObservedTaskState(arn, version=1, last_status="RUNNING", seen_at=now))
    store.put_worker(WorkerRecord(task_arn=arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=now))
    ready = store.mark_ready(arn, now, POLICY.jobs_per_task)
    assert ready is not None
    if busy:
        assert store.reserve_slot(ready, f"busy-{arn}", now, POLICY.jobs_per_task)


def measure(workers: int) -> dict[str, float]:
    clock = VirtualClock()
    store = InMemoryStore()
    ports = Ports(
        rooms=store,
        workers=store,
        runner=InMemoryRunner(clock),
        livekit=InMemoryLiveKit(clock),
        timers=InMemoryTimers(clock),
        clock=clock,
        metrics=InMemoryMetrics(),
        tasks=InMemoryTaskCount(),
    )
    capacity = Capacity(ports, POLICY)
    now = clock.now()
    for number in range(workers):
        worker(store, f"arn:aws:ecs:us-east-1:123456789012:task/agents/{number:06}", now, busy=number >= WARM)
    before_index, now_index = [], []
    for decision in range(DECISIONS):
        room = f"room-{decision}"
        read = store.worker_items_read
        listed = list(store.live_workers())  # what Capacity.workers() read for every decision
        before_index.append(store.worker_items_read - read)
        read = store.worker_items_read
        taken = capacity.take_slot(room, None, capacity.candidates(room, capacity.own_task(None)))
        now_index.append(store.worker_items_read - read)
        assert taken is not None, "a warm slot was free"
        store.release_slot(taken, room, POLICY.jobs_per_task, unassign=True)  # the pool stays warm
        assert len(listed) == workers
    return {
        "workers": workers,
        "items_per_decision_before": max(before_index),
        "items_per_decision_now": max(now_index),
    }


def main() -> int:
    rows = [measure(size) for size in SIZES]
    print(f"{'live workers':>12}  {'items/decision before':>21}  {'now':>4}  {'goal':>5}")
    for row in rows:
        print(
            f"{row['workers']:>12,}  {row['items_per_decision_before']:>21,}  "
            f"{row['items_per_decision_now']:>4}  {'≤ ' + str(GOAL_ITEMS):>5}"
        )
    met = all(row["items_per_decision_now"] <= GOAL_ITEMS for row in rows)
    verdict = "met" if met else "MISSED"
    print(f"goal: ≤ {GOAL_ITEMS} worker items per decision with a warm pool at every size: {verdict}")
    figures.write(
        "slot_decisions",
        {"goal_items_per_decision": GOAL_ITEMS, "warm_workers": WARM, "rows": rows, "goal_met": met},
    )
    return 0 if met or figures.smoke() else 1


if __name__ == "__main__":
    sys.exit(main())
