"""In-memory twin of the DynamoDB table: rooms, webhook ids and worker records.

Same semantics as ``adapters/dynamodb_store.py`` (the contract tests run against both),
including version conditions, what each write path stores (the ``attention`` index attribute,
``expires_at``) and TTL that hides expired dedupe items. The participant fast path mirrors the
adapter's ``UpdateItem`` expression field by field instead of recomputing the record, so the
twin is never smarter than DynamoDB. A lock makes it safe for threaded tests.
``writes``/``reads`` count calls the way DynamoDB would bill them; ``worker_items_read`` counts
the worker items reads return (gets, index queries, listings): what a slot decision costs.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable

from control_plane.pool import ARRIVAL_RING, Demand, smoothed_cold_start
from control_plane.ports import ObservedTaskState, VersionConflict
from control_plane.room import (
    DEFAULT_RETENTION_SECONDS,
    DEPARTED_PRUNE_THRESHOLD,
    ChangeKind,
    Human,
    ParticipantChange,
    Room,
    observe_participant,
    prune_departed,
    with_retention,
)
from control_plane.shards import in_shards, shard_of
from control_plane.slot_index import FREE, SLOT_SHARDS, STARTING, filed, pinned, slot_key
from control_plane.worker_protocol import WorkerRecord, WorkerStatus

_DRAINED: dict[str, object] = {"draining": True, "slot_key": None, "slot_free": None}


def _slot_fields(after: WorkerRecord, reserved: dict[str, float]) -> dict[str, object]:
    """What a reserve writes: the room's slot and the index attributes of the record judged."""
    return {
        "reserved": reserved,
        "assigned": after.assigned,
        "slot_key": after.slot_key,
        "slot_free": after.slot_free,
    }


def fast_observe(room: Room | None, change: ParticipantChange) -> Room | None:
    """What the DynamoDB adapter's fast-path ``UpdateItem`` writes, or None where its condition
    fails: same session, sid not departed; a join also needs no failure and a new sid. A join
    sets the index attribute and removes ``expires_at``; nothing else is recomputed."""
    if room is None or room.sid != change.room_sid or change.sid in room.departed:
        return None
    update: dict[str, object] = {"updated_at": change.at, "version": room.version + 1}
    if change.kind is ChangeKind.JOINED:
        if room.failed_at is not None or change.sid in room.humans:
            return None
        humans = {**room.humans, change.sid: Human(identity=change.identity, joined_at=change.at)}
        update |= {"humans": humans, "in_attention_index": True, "expires_at": None}
    else:
        humans = {sid: human for sid, human in room.humans.items() if sid != change.sid}
        update |= {"humans": humans, "departed": {**room.departed, change.sid: change.at}}
    return room.model_copy(update=update)


class InMemoryStore:
    def __init__(self, retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        self._retention = retention_seconds
        self._lock = threading.Lock()
        self._rooms: dict[str, Room] = {}
        self._events: dict[str, int] = {}
        self._workers: dict[str, WorkerRecord] = {}
        # The slot index as DynamoDB keeps it: slot_key -> the task ARNs filed under it.
        self._slot_index: dict[str, dict[str, None]] = {}
        self._sweep_cursors: dict[int, str] = {}
        self._waiting: dict[str, float] = {}
        # The pool item as DynamoDB stores it: a ring of (minute, count) slots and the average.
        self._arrival_ring: dict[int, tuple[int, int]] = {}
        self._cold_start: float | None = None
        self.reads = 0
        self.writes = 0
        self.worker_items_read = 0

    # RoomStore
    def get(self, name: str) -> Room | None:
        with self._lock:
            self.reads += 1
            return self._rooms.get(name)

    def _stored(self, room: Room, version: int) -> Room:
        kept = with_retention(room, self._retention)
        return kept.model_copy(update={"version": version, "in_attention_index": kept.needs_attention})

    def create(self, room: Room) -> Room:
        with self._lock:
            self.writes += 1
            if room.name in self._rooms:
                raise VersionConflict(f"room {room.name} exists already")
            stored = self._stored(room, 1)
            self._rooms[room.name] = stored
            return stored

    def save(self, room: Room, expected_version: int) -> Room:
        with self._lock:
            self.writes += 1
            current = self._rooms.get(room.name)
            if current is None or current.version != expected_version:
                raise VersionConflict(f"room {room.name} changed since version {expected_version}")
            stored = self._stored(room, expected_version + 1)
            self._rooms[room.name] = stored
            return stored

    def observe_participant(self, change: ParticipantChange) -> Room:
        """The adapter's algorithm: the fast path, else the pure function and a full write."""
        with self._lock:
            self.writes += 1
            current = self._rooms.get(change.room)
            fast = fast_observe(current, change)
            if fast is not None:
                self._rooms[change.room] = fast
                if len(fast.departed) <= DEPARTED_PRUNE_THRESHOLD:
                    return fast
                self.writes += 1
                pruned = fast.model_copy(update={"departed": prune_departed(fast.departed, change.at)})
                stored = self._stored(pruned, fast.version + 1)
                self._rooms[change.room] = stored
                return stored
            updated = observe_participant(current, change)
            if updated is None or updated == current:
                assert current is not None  # only a recorded room can make an event stale
                return current
            stored = self._stored(updated, (current.version if current else 0) + 1)
            self._rooms[change.room] = stored
            return stored

    def claim_event(self, event_id: str, now: int, expires_at: int) -> bool:
        with self._lock:
            self.writes += 1
            known = self._events.get(event_id)
            if known is not None and known >= now:
                return False
            self._events[event_id] = expires_at
            return True

    def release_event(self, event_id: str) -> None:
        with self._lock:
            self.writes += 1
            self._events.pop(event_id, None)

    def rooms_needing_attention(self, shards: Collection[int] | None = None) -> Iterable[Room]:
        """The index's shards hold each room under the shard of its name, as DynamoDB's do."""
        with self._lock:
            return [
                room
                for room in self._rooms.values()
                if room.in_attention_index and in_shards(room.name, shards)
            ]

    def get_sweep_cursor(self, group: int = 0) -> str | None:
        with self._lock:
            self.reads += 1
            return self._sweep_cursors.get(group)

    def put_sweep_cursor(self, room: str | None, group: int = 0) -> None:
        with self._lock:
            self.writes += 1
            if room is None:
                self._sweep_cursors.pop(group, None)
            else:
                self._sweep_cursors[group] = room

    # WorkerRegistry
    def get_worker(self, task_arn: str) -> WorkerRecord | None:
        with self._lock:
            self.reads += 1
            found = self._workers.get(task_arn)
            self.worker_items_read += found is not None
            return found

    def put_worker(self, record: WorkerRecord) -> None:
        with self._lock:
            self.writes += 1
            current = self._workers.get(record.task_arn)
            update: dict[str, object] = {
                "draining": current.draining if current else record.draining,
                "reserved": current.reserved if current else record.reserved,
                "assigned": current.assigned if current else record.assigned,
                "launched_at": current.launched_at if current else record.launched_at,
                "ready_at": current.ready_at if current else record.ready_at,
            }
            if record.status is WorkerStatus.STOPPED:
                update |= {"slot_key": None, "slot_free": None}
                if record.expires_at is None:
                    update["expires_at"] = int(record.heartbeat_at) + self._retention
            else:
                update |= {
                    "slot_key": current.slot_key if current else None,
                    "slot_free": current.slot_free if current else None,
                }
            self._put(record.model_copy(update=update))

    def _put(self, record: WorkerRecord) -> None:
        """Store a worker item and keep the slot index on its ``slot_key``, as the GSI does."""
        before = self._workers.get(record.task_arn)
        if before is not None and before.slot_key is not None:
            self._slot_index.get(before.slot_key, {}).pop(record.task_arn, None)
        if record.slot_key is not None:
            self._slot_index.setdefault(record.slot_key, {})[record.task_arn] = None
        self._workers[record.task_arn] = record

    def mark_draining(self, task_arn: str) -> None:
        with self._lock:
            self.writes += 1
            current = self._workers.get(task_arn)
            if current is not None:
                self._put(current.model_copy(update=_DRAINED))

    def reserve_slot(self, worker: WorkerRecord, room: str, now: float, jobs_per_task: int) -> bool:
        """The adapter's write is conditional on ``worker`` as read and, if that changed, once
        more on the item read afresh: the outcome of judging the one that matches the item."""
        with self._lock:
            self.writes += 1
            current = self._workers.get(worker.task_arn)
            if current is None:
                return False
            base = worker.model_copy(update={"slot_key": current.slot_key, "slot_free": current.slot_free})
            if pinned(worker) != pinned(current):
                self.reads += 1
                self.writes += 1
                base = current
            room_left = base.capacity - len(set(base.jobs) - set(base.reserved))
            if (
                room_left <= 0
                or current.status is not WorkerStatus.READY
                or current.draining
                or room in current.reserved
                or len(current.reserved) >= room_left
                or current.assigned >= jobs_per_task
            ):
                return False
            reserved = {**current.reserved, room: now}
            after = base.model_copy(update={"reserved": reserved, "assigned": current.assigned + 1})
            self._put(current.model_copy(update=_slot_fields(filed(after, jobs_per_task), reserved)))
            return True

    def adopt_slot(self, task_arn: str, room: str, now: float, jobs_per_task: int) -> None:
        with self._lock:
            self.reads += 1
            current = self._workers.get(task_arn)
            if current is None or room in current.reserved:
                return
            self.writes += 1
            after = current.model_copy(
                update={"reserved": {**current.reserved, room: now}, "assigned": current.assigned + 1}
            )
            self._put(filed(after, jobs_per_task))

    def release_slot(
        self, task_arn: str, room: str, jobs_per_task: int, unassign: bool = False
    ) -> WorkerRecord | None:
        with self._lock:
            self.reads += 1
            current = self._workers.get(task_arn)
            if current is None or room not in current.reserved:
                return current
            self.writes += 1
            reserved = {name: at for name, at in current.reserved.items() if name != room}
            assigned = current.assigned - 1 if unassign else current.assigned
            after = filed(
                current.model_copy(update={"reserved": reserved, "assigned": assigned}), jobs_per_task
            )
            self._put(after)
            return after

    def drain_if_idle(self, task_arn: str) -> bool:
        with self._lock:
            self.writes += 1
            current = self._workers.get(task_arn)
            if current is None or current.reserved or current.jobs:
                return False
            self._put(current.model_copy(update=_DRAINED))
            return True

    def reap_slot(self, task_arn: str, room: str, reserved_at: float, jobs_per_task: int) -> bool:
        with self._lock:
            self.reads += 1
            current = self._workers.get(task_arn)
            if current is None or current.reserved.get(room) != reserved_at or room in current.jobs:
                return False
            self.writes += 1
            reserved = {name: at for name, at in current.reserved.items() if name != room}
            after = current.model_copy(update={"reserved": reserved, "assigned": current.assigned - 1})
            self._put(filed(after, jobs_per_task))
            return True

    def drain_after(self, task_arn: str, room: str) -> WorkerRecord | None:
        with self._lock:
            self.writes += 1
            current = self._workers.get(task_arn)
            if current is None or current.reserved or set(current.jobs) - {room}:
                return None
            after = current.model_copy(update=_DRAINED)
            self._put(after)
            return after

    def refile_slot(self, worker: WorkerRecord, jobs_per_task: int) -> bool:
        with self._lock:
            self.writes += 1
            current = self._workers.get(worker.task_arn)
            if current is None or current.status is WorkerStatus.STOPPED:
                return False
            if pinned(current) != pinned(worker) or len(current.jobs) != len(worker.jobs):
                return False
            self._put(filed(current, jobs_per_task))
            return True

    def open_workers(self, shard: int, limit: int) -> list[WorkerRecord]:
        with self._lock:
            self.reads += 1
            listed = [self._workers[arn] for arn in self._slot_index.get(slot_key(FREE, shard), {})]
            found = sorted(listed, key=lambda w: (w.slot_free or 0, w.task_arn))[:limit]
            self.worker_items_read += len(found)
            return found

    def pool_workers(self) -> list[WorkerRecord]:
        with self._lock:
            found: list[WorkerRecord] = []
            for kind in (FREE, STARTING):
                for shard in range(SLOT_SHARDS):
                    self.reads += 1
                    found += [self._workers[arn] for arn in self._slot_index.get(slot_key(kind, shard), {})]
            self.worker_items_read += len(found)
            return found

    def put_waiting(self, room: str, since: float) -> None:
        with self._lock:
            self.writes += 1
            self._waiting.setdefault(room, since)

    def remove_waiting(self, room: str) -> None:
        with self._lock:
            self.writes += 1
            self._waiting.pop(room, None)

    def is_waiting(self, room: str) -> bool:
        with self._lock:
            self.reads += 1
            return room in self._waiting

    def waiting_rooms(self) -> list[tuple[str, float]]:
        with self._lock:
            self.reads += 1
            return sorted(self._waiting.items(), key=lambda item: (item[1], item[0]))

    def pool_demand(self) -> Demand:
        with self._lock:
            self.reads += 1
            ring = dict(self._arrival_ring)
            cold = self._cold_start
        return Demand.stored(ring, cold)

    def count_arrival(self, now: float) -> None:
        minute = int(now // 60)
        with self._lock:
            self.writes += 1
            slot = minute % ARRIVAL_RING
            held_minute, count = self._arrival_ring.get(slot, (minute, 0))
            self._arrival_ring[slot] = (minute, count + 1 if held_minute == minute else 1)

    def mark_ready(self, task_arn: str, now: float, jobs_per_task: int) -> WorkerRecord | None:
        with self._lock:
            self.reads += 1
            current = self._workers.get(task_arn)
            if current is None or current.ready_at is not None:
                return None
            self.writes += 1
            after = filed(current.model_copy(update={"ready_at": now}), jobs_per_task)
            self._put(after)
            return after

    def record_cold_start(self, seconds: float) -> None:
        with self._lock:
            self.writes += 1
            previous = self._cold_start
            value = seconds if previous is None else smoothed_cold_start(previous, seconds)
            self._cold_start = round(value, 3)

    def live_workers(self, shards: Collection[int] | None = None) -> Iterable[WorkerRecord]:
        with self._lock:
            found = [
                w
                for w in self._workers.values()
                if w.status is not WorkerStatus.STOPPED and in_shards(w.task_arn, shards)
            ]
            self.worker_items_read += len(found)
            return found

    def record_task_state(self, state: ObservedTaskState) -> bool:
        with self._lock:
            self.writes += 1
            current = self._workers.get(state.task_arn)
            if current is not None and current.ecs_version >= state.version:
                return False
            if current is not None and current.status is WorkerStatus.STOPPED and not state.stopped:
                return False
            base = current or WorkerRecord(
                task_arn=state.task_arn,
                status=WorkerStatus.STARTING,
                capacity=0,
                heartbeat_at=state.seen_at,
                launched_at=state.seen_at,
                launched_for=state.launched_for,
            )
            update: dict[str, object] = {"ecs_version": state.version, "last_status": state.last_status}
            if state.stop_code is not None:
                update["stop_code"] = state.stop_code
            if base.launched_at is None:
                update["launched_at"] = state.seen_at
            if base.launched_for is None and state.launched_for is not None:
                update["launched_for"] = state.launched_for
            if state.stopped:
                update |= {"status": WorkerStatus.STOPPED, "slot_key": None, "slot_free": None}
                update["expires_at"] = int(state.seen_at) + self._retention
            elif current is None:
                # The write that creates the item files it as starting (conditional on its absence).
                update |= {
                    "slot_key": slot_key(STARTING, shard_of(state.task_arn, SLOT_SHARDS)),
                    "slot_free": 0,
                }
            self._put(base.model_copy(update=update))
            return True
