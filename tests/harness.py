"""A whole control plane on in-memory twins and a virtual clock, driven the way AWS would.

``TwinStack`` delivers webhook events to the controller, plays the worker side (record +
ready message), and runs timer messages when the virtual clock reaches them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.adapters.memory.runtime import (
    InMemoryMetrics,
    InMemoryRunner,
    InMemoryTimers,
    VirtualClock,
)
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.controller import RoomController
from control_plane.events import EventParticipant, EventRoom, LiveKitEvent
from control_plane.ports import Ports
from control_plane.reconcile import Policy
from control_plane.room import Room
from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus

AGENT_NAME = "voice-agent"
STANDARD, SIP, EGRESS, AGENT = 0, 3, 2, 4

POLICY = Policy(
    grace_seconds=60,
    agent_name=AGENT_NAME,
    claim_lease_seconds=30,
    history_ttl_seconds=7 * 24 * 3600,
    worker_stale_seconds=45,
)

_ids = itertools.count(1)


def event(
    kind: str,
    room: str = "room-1",
    room_sid: str = "RM_1",
    sid: str | None = None,
    identity: str = "alice",
    participant_kind: int = STANDARD,
    at: float = 0,
    event_id: str | None = None,
    departure_timeout: int = 120,
) -> LiveKitEvent:
    participant = None
    if sid is not None:
        participant = EventParticipant(sid=sid, identity=identity, kind=participant_kind)
    return LiveKitEvent(
        id=event_id or f"EV_{next(_ids)}",
        event=kind,
        created_at=int(at),
        room=EventRoom(sid=room_sid, name=room, departure_timeout=departure_timeout),
        participant=participant,
    )


@dataclass
class TwinStack:
    clock: VirtualClock = field(default_factory=VirtualClock)
    policy: Policy = POLICY

    def __post_init__(self) -> None:
        self.store = InMemoryStore()
        self.runner = InMemoryRunner()
        self.livekit = InMemoryLiveKit(self.clock)
        self.timers = InMemoryTimers(self.clock)
        self.metrics = InMemoryMetrics()
        self.ports = Ports(
            rooms=self.store,
            workers=self.store,
            runner=self.runner,
            livekit=self.livekit,
            timers=self.timers,
            clock=self.clock,
            metrics=self.metrics,
        )
        self.controller = RoomController(
            self.ports, self.policy, departure_timeout=70, event_ttl_seconds=86400
        )

    def event_for(self, kind: str, sid: str, **kwargs: object) -> LiveKitEvent:
        """A webhook for a human ``sid``, timestamped now, without delivering it."""
        kwargs.setdefault("at", self.clock.now())
        return event(kind, sid=sid, identity=f"human-{sid}", **kwargs)  # type: ignore[arg-type]

    def deliver(self, kind: str, **kwargs: object) -> str:
        kwargs.setdefault("at", self.clock.now())
        return self.controller.handle_event(event(kind, **kwargs))  # type: ignore[arg-type]

    def join(self, sid: str, identity: str = "alice", room: str = "room-1", **kwargs: object) -> str:
        self.livekit.add_participant(room, sid, identity)
        return self.deliver("participant_joined", sid=sid, identity=identity, room=room, **kwargs)

    def leave(self, sid: str, identity: str = "alice", room: str = "room-1", **kwargs: object) -> str:
        self.livekit.remove_participant(room, sid)
        return self.deliver("participant_left", sid=sid, identity=identity, room=room, **kwargs)

    def room(self, name: str = "room-1") -> Room:
        room = self.store.get(name)
        assert room is not None
        return room

    def worker_becomes_ready(self, room: str = "room-1") -> str:
        """What the agent container does once registered: record, then the ready message."""
        task = next(t for t in self.runner.running() if t.room == room)
        self.livekit.register_worker(AGENT_NAME)
        self.store.put_worker(
            WorkerRecord(
                task_arn=task.arn,
                status=WorkerStatus.READY,
                capacity=1,
                heartbeat_at=self.clock.now(),
                launched_for=room,
            )
        )
        self.timers.send(WorkerReady(task_arn=task.arn, room=room), 0)
        self.run_due_timers()
        return task.arn

    def run_due_timers(self) -> int:
        due = self.timers.take_due()
        for message in due:
            self.controller.handle_timer(message)
        return len(due)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing timer messages as they come due."""
        target = self.clock.now() + seconds
        while True:
            upcoming = [s.due_at for s in self.timers.sent if s.due_at <= target]
            if not upcoming:
                break
            self.clock.advance(max(0.0, min(upcoming) - self.clock.now()))
            self.run_due_timers()
        self.clock.advance(target - self.clock.now())

    def dispatches(self, room: str = "room-1") -> list[object]:
        return [d for d in self.livekit.list_dispatches(room) if d.agent_name == AGENT_NAME]
