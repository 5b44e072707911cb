"""The invariants every reliability test holds the control plane to, written once.

Each check returns the violations it found, as sentences a person can act on; :func:`holds`
asserts there are none. A check reads a :class:`RoomView` per room: what LiveKit says (the
humans really there, our agent's dispatches), what ECS runs for the room, and the stored
record. Views come from the twin stack (:func:`twin_views`) or from moto and the fake LiveKit
server (:func:`aws_views`), so the same sentences judge the unit-speed and the real-process runs.

1. At most one agent per room: one running task launched for it, one dispatch of our agent.
2. No agent for a room without humans beyond grace + 5 s, or one sweep later when a timer or
   an event was lost (callers check at the point where that much time has passed).
3. Every room with humans has an agent within one sweep, unless its launches back off or it
   failed in a crash loop: both are recorded, logged and counted by the control plane.
4. No effect repeated by a retry: a redelivered trigger performs nothing (:class:`EffectMeter`).
5. No write on a rejected request (:func:`no_write`).
6. Nothing logged contains a secret, token or key (:func:`secrets_in`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.humans import is_human
from control_plane.ports import Dispatch
from control_plane.room import Room
from control_plane.worker_protocol import LAUNCHED_FOR_ROOM_ENV
from local.fixtures import CLUSTER, TABLE, LocalAws
from tests.harness import AGENT_NAME, TwinStack

STARTED_BY = "livekit-agent-lifecycle"
GRACE_SLACK_SECONDS = 5
JWT_PREFIX = "eyJ"  # base64 of '{"': every JWT header starts with it
SIGV4_MARK = "AWS4-HMAC-SHA256"  # a signed AWS Authorization header


@dataclass(frozen=True)
class RoomView:
    name: str
    humans: frozenset[str]  # sids LiveKit lists as humans in the room now
    tasks: tuple[str, ...]  # our running ECS tasks launched for the room
    dispatches: tuple[Dispatch, ...]  # our agent's dispatches in the room
    record: Room | None
    indexed: bool  # the record is in the sweeper's attention index

    def exempt_from_launch(self, now: float) -> bool:
        """The control plane has announced it will not launch now: a crash loop, a backoff, or
        a launch the launch limiter queued (its Respawn timer launches it when tokens refill)."""
        record = self.record
        return record is not None and (
            record.failed_at is not None
            or (record.next_launch_at is not None and record.next_launch_at > now)
            or (record.agent is not None and record.agent.launch_queued)
        )


def holds(*violations: Iterable[str], context: object = None) -> None:
    found = [v for group in violations for v in group]
    detail = f"\n(context: {context})" if context is not None else ""
    assert not found, "invariants violated:\n- " + "\n- ".join(found) + detail


# --- 1-3: agents ------------------------------------------------------------------------------


def at_most_one_agent(views: Iterable[RoomView]) -> list[str]:
    found = []
    for view in views:
        if len(view.tasks) > 1:
            found.append(f"room {view.name!r} has {len(view.tasks)} running agent tasks: {list(view.tasks)}")
        if len(view.dispatches) > 1:
            ids = [d.dispatch_id for d in view.dispatches]
            found.append(f"room {view.name!r} has {len(view.dispatches)} dispatches of our agent: {ids}")
    return found


def no_agent_without_humans(views: Iterable[RoomView]) -> list[str]:
    """For a point at least grace + 5 s after the room emptied (and the control plane could know)."""
    return [
        f"room {view.name!r} has nobody in it but still {len(view.tasks)} agent task(s) and "
        f"{len(view.dispatches)} dispatch(es) (record state: {_state(view.record)})"
        for view in views
        if not view.humans and (view.tasks or view.dispatches)
    ]


def agent_for_every_room_with_humans(
    views: Iterable[RoomView], now: float, *, dispatched: bool = False
) -> list[str]:
    """For a point one sweep after the humans arrived: each room with humans has its task (and,
    once its worker is ready, ``dispatched``: one dispatch with a running job)."""
    found = []
    for view in views:
        if not view.humans or view.exempt_from_launch(now):
            continue
        agent = view.record.agent if view.record is not None else None
        recorded = agent.task_arn if agent is not None else None
        if len(view.tasks) != 1 or recorded not in view.tasks:
            found.append(
                f"room {view.name!r} has humans {sorted(view.humans)} but running tasks {list(view.tasks)} "
                f"and recorded task {recorded!r} (record state: {_state(view.record)})"
            )
        elif dispatched and not any(d.has_running_job for d in view.dispatches):
            found.append(f"room {view.name!r} has humans and a ready worker but no dispatch with a job")
    return found


def tracked_while_humans(views: Iterable[RoomView]) -> list[str]:
    """A room with humans is in the sweeper's index, so a lost timer or event cannot strand it."""
    return [
        f"room {view.name!r} has humans but its record is "
        + ("missing" if view.record is None else "not in the attention index")
        for view in views
        if view.humans and (view.record is None or not view.indexed)
    ]


def _state(record: Room | None) -> str:
    return "no record" if record is None else record.state.value


# --- views ------------------------------------------------------------------------------------


def twin_views(stack: TwinStack, names: Iterable[str] = ()) -> list[RoomView]:
    """Every room the stack knows of: named, launched for, or open in LiveKit."""
    rooms = set(names) | {task.room for task in stack.runner.tasks.values()}
    rooms |= {room.name for room in stack.livekit.list_rooms()}
    views = []
    for name in sorted(rooms):
        record = stack.store.get(name)
        views.append(
            RoomView(
                name=name,
                humans=frozenset(p.sid for p in stack.livekit.list_participants(name) if is_human(p.kind)),
                tasks=tuple(t.arn for t in stack.runner.running() if t.room == name),
                dispatches=tuple(
                    d for d in stack.livekit.list_dispatches(name) if d.agent_name == AGENT_NAME
                ),
                record=record,
                indexed=record is not None and record.in_attention_index,
            )
        )
    return views


def running_tasks_by_room(aws: LocalAws) -> dict[str, list[str]]:
    """Our running ECS tasks, by the room named in their RunTask environment override."""
    ecs = aws.client("ecs")
    arns = [
        arn
        for page in ecs.get_paginator("list_tasks").paginate(cluster=CLUSTER, startedBy=STARTED_BY)
        for arn in page["taskArns"]
    ]
    rooms: dict[str, list[str]] = {}
    for start in range(0, len(arns), 100):
        described = ecs.describe_tasks(cluster=CLUSTER, tasks=arns[start : start + 100])["tasks"]
        for task in described:
            if task.get("desiredStatus") != "RUNNING":
                continue
            room = _launched_for(task)
            rooms.setdefault(room, []).append(task["taskArn"])
    return rooms


def _launched_for(task: Mapping[str, Any]) -> str:
    for container in task.get("overrides", {}).get("containerOverrides", []):
        for variable in container.get("environment", []):
            if variable.get("name") == LAUNCHED_FOR_ROOM_ENV:
                return str(variable.get("value"))
    return "<no room override>"


def indexed_rooms(aws: LocalAws) -> set[str]:
    pages = (
        aws.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=TABLE,
            IndexName="attention-index",
            KeyConditionExpression="attention = :a",
            ExpressionAttributeValues={":a": {"S": "room"}},
        )
    )
    return {item["pk"]["S"].removeprefix("ROOM#") for page in pages for item in page["Items"]}


def aws_views(aws: LocalAws, names: Iterable[str] = ()) -> list[RoomView]:
    """What moto's ECS and DynamoDB and the fake LiveKit server hold, per room."""
    store = DynamoDBStore(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
    tasks = running_tasks_by_room(aws)
    indexed = indexed_rooms(aws)
    livekit = aws.livekit.state
    rooms = set(names) | set(tasks) | {room.name for room in livekit.list_rooms()}
    return [
        RoomView(
            name=name,
            humans=frozenset(p.sid for p in livekit.list_participants(name) if is_human(p.kind)),
            tasks=tuple(tasks.get(name, ())),
            dispatches=tuple(d for d in livekit.list_dispatches(name) if d.agent_name == AGENT_NAME),
            record=store.get(name),
            indexed=name in indexed,
        )
        for name in sorted(rooms)
    ]


# --- 4: no effect repeated by a retry -----------------------------------------------------------


class EffectMeter:
    """Counts the effects a twin stack performs, at the ports' edge.

    Wraps the twins' methods on the instances (every holder of the port sees the wrapper):
    tasks started and stopped, dispatches created and deleted, timer messages sent, room
    records written (their versions). A snapshot before and after a redelivered trigger must
    be equal.
    """

    def __init__(self, stack: TwinStack) -> None:
        self.stack = stack
        self.counts: Counter[str] = Counter()
        self.dispatches_by_token: Counter[str] = Counter()
        livekit, timers = stack.livekit, stack.timers
        _wrap(livekit, "create_dispatch", self._created)
        _wrap(livekit, "delete_dispatch", self._deleting, before=True)
        _wrap(timers, "send", lambda *_: self.counts.update(["timer sent"]), before=True)

    def _created(self, dispatch: Dispatch, room: str, agent_name: str, metadata: str) -> None:
        self.counts["dispatch created"] += 1
        self.dispatches_by_token[metadata] += 1

    def _deleting(self, room: str, dispatch_id: str) -> None:
        if self.stack.livekit.get_dispatch(room, dispatch_id) is not None:
            self.counts["dispatch deleted"] += 1

    def snapshot(self, rooms: Sequence[str]) -> dict[str, int]:
        tasks = self.stack.runner.tasks.values()
        taken = dict(self.counts)
        taken["task started"] = len(tasks)
        taken["task stopped by us"] = sum(1 for t in tasks if t.stop_code == "UserInitiated")
        for name in rooms:
            record = self.stack.store.get(name)
            taken[f"room {name} version"] = record.version if record is not None else 0
        return taken


def repeated_effects(what: str, before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    changed = {key: (before.get(key, 0), after.get(key, 0)) for key in set(before) | set(after)}
    return [
        f"{what} repeated an effect: {key} went from {old} to {new}"
        for key, (old, new) in sorted(changed.items())
        if old != new
    ]


def _wrap(target: object, method: str, observe: Callable[..., object], *, before: bool = False) -> None:
    """Replace ``target.method`` by one that calls ``observe`` before it (with its arguments)
    or after it (with its result first); the original still does the work."""
    original = getattr(target, method)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            observe(*args, **kwargs)
            return original(*args, **kwargs)
        result = original(*args, **kwargs)
        observe(result, *args, **kwargs)
        return result

    setattr(target, method, wrapped)


# --- 5: no write on a rejected request ----------------------------------------------------------


def table_items(aws: LocalAws) -> list[dict[str, Any]]:
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
    return sorted((item for page in pages for item in page["Items"]), key=lambda item: item["pk"]["S"])


def no_write(what: str, before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[str]:
    if list(before) == list(after):
        return []
    old = {item["pk"]["S"]: item for item in before}
    new = {item["pk"]["S"]: item for item in after}
    touched = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return [f"{what} wrote to the table although it was rejected: {touched}"]


# --- 6: nothing logged contains a secret, token or key ------------------------------------------


def secrets_in(text: str, secrets: Mapping[str, str]) -> list[str]:
    found = [
        f"the {label} appears in the logs" for label, value in secrets.items() if value and value in text
    ]
    if JWT_PREFIX in text:
        at = text.index(JWT_PREFIX)
        found.append(f"a JWT appears in the logs: …{text[max(0, at - 80) : at + 20]}…")
    if SIGV4_MARK in text:
        found.append("a signed AWS Authorization header appears in the logs")
    return found
