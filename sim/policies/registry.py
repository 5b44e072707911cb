"""The table twin as the ``default`` rows use it: indexed as DynamoDB's sparse index is, and
with the workers' heartbeats applied when read.

Both keep the core's results and every billed count as the plain twin gives them; they only
spare the simulator work the real table does not do (scanning every record ever written)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from control_plane.adapters.memory.store import InMemoryStore
from control_plane.pool import Demand
from control_plane.ports import ObservedTaskState
from control_plane.room import Room
from control_plane.worker_protocol import WorkerRecord, WorkerStatus

if TYPE_CHECKING:
    from sim.world import World

HEARTBEAT_SECONDS = 15.0
# A sweep's index query reads about this many attention items per read unit (items ~1 KB).
ITEMS_PER_READ_UNIT = 4


class AttentionRooms(dict[str, Room]):
    """The twin's rooms, with those in the attention index kept apart as they are written (the
    twin keeps every room for good and never deletes one, so a room's position is fixed)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention: set[str] = set()
        self.position: dict[str, int] = {}

    def __setitem__(self, name: str, room: Room) -> None:
        if name not in self:
            self.position[name] = len(self.position)
        super().__setitem__(name, room)
        if room.in_attention_index:
            self.attention.add(name)
        else:
            self.attention.discard(name)


class IndexedStore(InMemoryStore):
    """The table twin with its live workers and its attention rooms indexed, as the sparse
    attention index holds them.

    The twin keeps every stopped worker's and closed room's record for good (DynamoDB's TTL
    removes them within days) and finds the live ones by scanning all of them: over a simulated
    day of ~10,000 tasks and rooms, read on every slot decision and every sweep, those scans
    were a large part of a run. Same records, same order, same counts; only the listings are
    kept up to date as records are written.
    """

    def __init__(self, retention_seconds: int) -> None:
        super().__init__(retention_seconds)
        self._live: dict[str, None] = {}
        self._indexed_rooms = AttentionRooms()
        self._rooms = self._indexed_rooms

    def rooms_needing_attention(self) -> Iterable[Room]:
        rooms = self._indexed_rooms
        with self._lock:
            return [rooms[name] for name in sorted(rooms.attention, key=rooms.position.__getitem__)]

    def heartbeat(self, task_arn: str, heartbeat_at: float, jobs: dict[str, str]) -> WorkerRecord | None:
        """The worker's heartbeat write: its time and jobs, nothing the control plane owns (one
        write, as ``put_worker`` of the record read with those two fields changed)."""
        with self._lock:
            current = self._workers.get(task_arn)
            if current is None:
                return None
            self.writes += 1
            fresh = current.model_copy(update={"heartbeat_at": heartbeat_at, "jobs": jobs})
            self._workers[task_arn] = fresh
            return fresh

    def put_worker(self, record: WorkerRecord) -> None:
        super().put_worker(record)
        self._index(record.task_arn)

    def record_task_state(self, state: ObservedTaskState) -> bool:
        recorded = super().record_task_state(state)
        self._index(state.task_arn)
        return recorded

    def live_workers(self) -> Iterable[WorkerRecord]:
        with self._lock:
            return [self._workers[arn] for arn in self._live]

    def _index(self, task_arn: str) -> None:
        with self._lock:
            record = self._workers.get(task_arn)
            if record is not None and record.status is not WorkerStatus.STOPPED:
                self._live[task_arn] = None
            else:
                self._live.pop(task_arn, None)


class HeartbeatedWorkers:
    """``WorkerRegistry`` over the table, with the workers' heartbeats applied when read.

    Writing every live worker's heartbeat every 15 s would be most of a simulated day's work,
    and the core sees a heartbeat only when it reads a record. So a record is brought up to its
    worker's latest beat (and its current job) when read: the record the periodic writes would
    have left. Those writes are billed from the workers' lifetimes in the report, not here.
    ``mark_draining`` and a granted ``drain_if_idle`` also tell the worker, which reads the flag
    on its next heartbeat, drains and exits. Everything else is the table's.

    Listing the live workers is a query of the attention index (every live worker item, about
    ``ITEMS_PER_READ_UNIT`` per read unit), billed per call in ``listing_reads``: the pool lists
    them for every slot decision.
    """

    def __init__(self, store: IndexedStore, world: World) -> None:
        self._store = store
        self._world = world
        self.refresh_writes = 0
        self.listing_reads = 0
        self.listings = 0
        self.listed_items = 0
        # Until when each worker's record is as its last heartbeat left it (its next beat).
        self._fresh_until: dict[str, float] = {}

    def touch(self, task_arn: str) -> None:
        """The worker's jobs changed: its next read brings its record up to date."""
        self._fresh_until.pop(task_arn, None)

    def get_worker(self, task_arn: str) -> WorkerRecord | None:
        record = self._store.get_worker(task_arn)
        return None if record is None else self._beat(record)

    def put_worker(self, record: WorkerRecord) -> None:
        self._store.put_worker(record)

    def mark_draining(self, task_arn: str) -> None:
        self._store.mark_draining(task_arn)
        self._world.drain_requested(task_arn)

    def drain_if_idle(self, task_arn: str) -> bool:
        self.get_worker(task_arn)  # the jobs its last heartbeat listed
        drained = self._store.drain_if_idle(task_arn)
        if drained:
            self._world.drain_requested(task_arn)
        return drained

    def reap_slot(self, task_arn: str, room: str, reserved_at: float) -> bool:
        return self._store.reap_slot(task_arn, room, reserved_at)

    def drain_after(self, task_arn: str, room: str) -> WorkerRecord | None:
        self.get_worker(task_arn)  # the jobs its last heartbeat listed
        drained = self._store.drain_after(task_arn, room)
        if drained is not None:
            self._world.drain_requested(task_arn)
        return drained

    def reserve_slot(self, worker: WorkerRecord, room: str, now: float, jobs_per_task: int) -> bool:
        return self._store.reserve_slot(worker, room, now, jobs_per_task)

    def adopt_slot(self, task_arn: str, room: str, now: float) -> None:
        self._store.adopt_slot(task_arn, room, now)

    def release_slot(self, task_arn: str, room: str, unassign: bool = False) -> WorkerRecord | None:
        return self._store.release_slot(task_arn, room, unassign)

    def put_waiting(self, room: str, since: float) -> None:
        self._store.put_waiting(room, since)

    def remove_waiting(self, room: str) -> None:
        self._store.remove_waiting(room)

    def is_waiting(self, room: str) -> bool:
        return self._store.is_waiting(room)

    def waiting_rooms(self) -> list[tuple[str, float]]:
        return self._store.waiting_rooms()

    def pool_demand(self) -> Demand:
        return self._store.pool_demand()

    def count_arrival(self, now: float) -> None:
        self._store.count_arrival(now)

    def mark_ready(self, task_arn: str, now: float) -> WorkerRecord | None:
        return self._store.mark_ready(task_arn, now)

    def record_cold_start(self, seconds: float) -> None:
        self._store.record_cold_start(seconds)

    def live_workers(self) -> Iterable[WorkerRecord]:
        # ``_beat`` inlined for the records already as fresh as their last heartbeat (most of
        # them): this listing runs for every slot decision.
        now, fresh_until, ready = self._world.now(), self._fresh_until, WorkerStatus.READY
        listed = [
            record
            if record.status is not ready or now < fresh_until.get(record.task_arn, -math.inf)
            else self._beat(record)
            for record in self._store.live_workers()
        ]
        self.listing_reads += max(1, math.ceil(len(listed) / ITEMS_PER_READ_UNIT))
        self.listings += 1
        self.listed_items += len(listed)
        return listed

    def record_task_state(self, state: ObservedTaskState) -> bool:
        return self._store.record_task_state(state)

    def _beat(self, record: WorkerRecord) -> WorkerRecord:
        if record.status is not WorkerStatus.READY:
            return record
        arn = record.task_arn
        if self._world.now() < self._fresh_until.get(arn, -math.inf):
            return record
        task = self._world.tasks.get(arn)
        beat = self._world.heartbeat_at(task) if task is not None else None
        if task is None or beat is None:
            return record
        self._fresh_until[arn] = beat + (self._world.policy.worker.heartbeat_s or HEARTBEAT_SECONDS)
        jobs = task.rooms()
        if beat <= record.heartbeat_at and jobs == record.jobs:
            return record
        fresh = self._store.heartbeat(arn, max(beat, record.heartbeat_at), jobs)
        if fresh is None:
            return record
        self.refresh_writes += 1
        return fresh
