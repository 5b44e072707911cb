"""The slot index: where a slot decision finds a worker with a free slot without listing them all.

A sparse global secondary index (``slot-index``) of worker items: partition key ``slot_key``,
``free#<shard>`` for a ready worker with a free slot and ``starting#<shard>`` for a task launched
and not ready yet, absent otherwise; sort key ``slot_free``, the free slots it has. A decision
reads its room's own task and a few items of one shard (fullest first: packing rooms onto few
tasks leaves whole tasks idle to scale in), so its reads do not grow with the workers.

The two attributes are written by the same conditional write that changes what they derive from
(reserve, release, adopt, reap, mark ready, drain, stop), computed by :func:`slot_entry` from the
record that write is conditional on: they cannot drift by a write lost between two. A worker's
own writes (heartbeat, jobs, its status) never touch them (its task role may not), so what it
changes alone is re-filed by the sweep (:func:`drifted`). The index is where to look, never the
truth: the reserve write checks the item itself.
"""

from __future__ import annotations

from control_plane.shards import shard_of
from control_plane.worker_protocol import WorkerRecord, WorkerStatus

SLOT_INDEX = "slot-index"
SLOT_SHARDS = 8
FREE = "free"
STARTING = "starting"


def slot_key(kind: str, shard: int) -> str:
    return f"{kind}#{shard}"


def slot_entry(worker: WorkerRecord, jobs_per_task: int) -> tuple[str, int] | None:
    """The index attributes a worker item carries (``slot_key``, ``slot_free``), or None when it
    is in neither part of the index (busy, spent, draining, stopped)."""
    if worker.draining:
        return None
    shard = shard_of(worker.task_arn, SLOT_SHARDS)
    if worker.status is WorkerStatus.READY:
        free = worker.free_slots(jobs_per_task)
        return (slot_key(FREE, shard), free) if free > 0 else None
    if worker.status is WorkerStatus.STARTING:
        return (slot_key(STARTING, shard), 0)
    return None


def filed(worker: WorkerRecord, jobs_per_task: int) -> WorkerRecord:
    """The record with its index attributes as :func:`slot_entry` derives them."""
    entry = slot_entry(worker, jobs_per_task)
    key, free = entry if entry is not None else (None, None)
    return worker.model_copy(update={"slot_key": key, "slot_free": free})


def drifted(worker: WorkerRecord, jobs_per_task: int) -> bool:
    """The stored index attributes disagree with the record (a worker's own write changed it)."""
    entry = slot_entry(worker, jobs_per_task)
    return (worker.slot_key, worker.slot_free) != (entry if entry is not None else (None, None))


def pinned(worker: WorkerRecord) -> tuple[object, ...]:
    """The fields a slot write is conditional on: what :func:`slot_entry` derives from, but the
    worker's own ``jobs`` (changed by the worker as jobs come and go, it would fail every write)."""
    return (worker.status, worker.draining, worker.capacity, worker.assigned, len(worker.reserved))
