"""UpdateItem expressions for the writes that change a worker's slots (``dynamodb_store``).

Each such write is conditional on the fields the slot index derives from, as the record it was
computed from holds them (:func:`control_plane.slot_index.pinned`), and sets the index
attributes :func:`control_plane.slot_index.slot_entry` derives from the record after it: the
keys change in the write that changes the slots, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from control_plane.slot_index import slot_entry
from control_plane.worker_protocol import WorkerRecord

SLOT_ATTRIBUTES = ("slot_key", "slot_free")


@dataclass
class WorkerUpdate:
    """One UpdateItem's clauses, names and values, built up by the helpers below."""

    sets: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    adds: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def arguments(self) -> dict[str, Any]:
        clauses = [
            f"{verb} {', '.join(parts)}"
            for verb, parts in (("SET", self.sets), ("REMOVE", self.removes), ("ADD", self.adds))
            if parts
        ]
        arguments: dict[str, Any] = {
            "UpdateExpression": " ".join(clauses),
            "ExpressionAttributeNames": self.names,
        }
        if self.conditions:
            arguments["ConditionExpression"] = " AND ".join(f"({c})" for c in self.conditions)
        if self.values:
            arguments["ExpressionAttributeValues"] = self.values
        return arguments


def pin(update: WorkerUpdate, worker: WorkerRecord) -> None:
    """Conditional on the item still holding what ``worker`` says of its slots (an attribute a
    worker-created item lacks counts as its default)."""
    update.names |= {
        "#status": "status",
        "#capacity": "capacity",
        "#assigned": "assigned",
        "#reserved": "reserved",
        "#draining": "draining",
    }
    update.values |= {
        ":pin_status": {"S": worker.status.value},
        ":pin_capacity": {"N": str(worker.capacity)},
        ":pin_assigned": {"N": str(worker.assigned)},
        ":pin_reserved": {"N": str(len(worker.reserved))},
        ":pin_draining": {"BOOL": True},
    }
    update.conditions += ["#status = :pin_status", "#capacity = :pin_capacity"]
    if worker.assigned:
        update.conditions.append("#assigned = :pin_assigned")
    else:
        update.conditions.append("attribute_not_exists(#assigned) OR #assigned = :pin_assigned")
    if worker.reserved:
        update.conditions.append("size(#reserved) = :pin_reserved")
    else:
        update.conditions.append("attribute_not_exists(#reserved) OR size(#reserved) = :pin_reserved")
    if worker.draining:
        update.conditions.append("#draining = :pin_draining")
    else:
        update.conditions.append("attribute_not_exists(#draining) OR #draining <> :pin_draining")


def file(update: WorkerUpdate, after: WorkerRecord, jobs_per_task: int) -> None:
    """Set the index attributes ``after`` has (or remove them: not in the index)."""
    entry = slot_entry(after, jobs_per_task)
    if entry is None:
        unfile(update)
        return
    key, free = entry
    update.names |= {"#slot_key": "slot_key", "#slot_free": "slot_free"}
    update.values |= {":slot_key": {"S": key}, ":slot_free": {"N": str(free)}}
    update.sets += ["#slot_key = :slot_key", "#slot_free = :slot_free"]


def unfile(update: WorkerUpdate) -> None:
    """Out of the index (draining, stopped)."""
    update.names |= {"#slot_key": "slot_key", "#slot_free": "slot_free"}
    update.removes += ["#slot_key", "#slot_free"]
