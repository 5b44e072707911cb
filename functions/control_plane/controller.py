"""The room controller: every trigger (webhook, timer, worker report, ECS event, sweep, API
command) enters here and ends in the reconcile loop, the only place effects happen.

One object per duty, wired together here:
- :mod:`control_plane.room_observations`: what LiveKit says about rooms (webhooks, listings);
- :mod:`control_plane.worker_reports`: what workers and ECS say about agents;
- :mod:`control_plane.room_commands`: the API's and operators' commands;
- :mod:`control_plane.room_loop`: decide, save with a version condition, then act;
- :mod:`control_plane.effects`: the effects a won save claimed (slot, launch, dispatch, removal);
- :mod:`control_plane.room_records`: versioned read-modify-write of a room.
"""

from __future__ import annotations

import logging
import math

from control_plane.capacity import Capacity
from control_plane.effects import Effects
from control_plane.pool import PoolPolicy
from control_plane.ports import Ports
from control_plane.reconcile import Policy
from control_plane.room import Room
from control_plane.room_commands import RoomCommands
from control_plane.room_loop import RoomLoop
from control_plane.room_observations import RoomObservations
from control_plane.room_records import RoomRecords
from control_plane.worker_protocol import (
    GraceExpired,
    JobEnded,
    JobStarted,
    Respawn,
    TimerMessage,
    WakeRooms,
    WorkerReady,
)
from control_plane.worker_reports import WorkerReports

log = logging.getLogger(__name__)

# A grace timer this close to its deadline acts now instead of re-arming for the remainder.
TIMER_SLACK_SECONDS = 1.0


class RoomController:
    def __init__(
        self,
        ports: Ports,
        policy: Policy,
        departure_timeout: int,
        event_ttl_seconds: int,
        pool: PoolPolicy | None = None,
    ) -> None:
        self._ports = ports
        self.capacity = Capacity(ports, pool or PoolPolicy(worker_stale_seconds=policy.worker_stale_seconds))
        records = RoomRecords(ports.rooms, ports.clock)
        loop = RoomLoop(ports, policy, self.capacity, Effects(ports, policy, self.capacity, records))
        observations = RoomObservations(ports, policy, records, loop, event_ttl_seconds)
        reports = WorkerReports(ports, policy, self.capacity, records, loop)
        commands = RoomCommands(ports, policy, records, loop, departure_timeout)
        self.reconcile = loop.reconcile
        self.settled = loop.settled
        self.handle_event = observations.handle_event
        self.room_gone = observations.room_gone
        self.observe_live_room = observations.observe_live_room
        self.worker_ready = reports.worker_ready
        self.wake_waiting = reports.wake_waiting
        self.job_started = reports.job_started
        self.job_ended = reports.job_ended
        self.job_lost = reports.job_lost
        self.task_stopped = reports.task_stopped
        self.create_room = commands.create_room
        self.expect_human = commands.expect_human
        self.force_close = commands.force_close
        self.retire_agent = commands.retire_agent
        self.reset_failed = commands.reset_failed
        self.dispatch_replaced = commands.dispatch_replaced

    def handle_timer(self, message: TimerMessage) -> Room | None:
        """A message from the timer queue: a grace deadline, or a worker's report."""
        if isinstance(message, GraceExpired):
            room = self._ports.rooms.get(message.room)
            if room is None or room.grace is None or room.grace.generation != message.generation:
                log.info("stale grace timer", extra={"room": message.room, "generation": message.generation})
            elif (early := room.grace.deadline - self._ports.clock.now()) > TIMER_SLACK_SECONDS:
                # SQS delays are whole seconds and may fire early: re-arm rather than waste it.
                self._ports.timers.send(message, math.ceil(early))
                log.info("grace timer early: re-armed", extra={"room": message.room, "seconds": early})
                return room
            return self.reconcile(message.room, room)
        if isinstance(message, WorkerReady):
            return self.worker_ready(message)
        if isinstance(message, JobStarted):
            return self.job_started(message)
        if isinstance(message, JobEnded):
            return self.job_ended(message)
        if isinstance(message, WakeRooms):
            self.wake_waiting()
            return None
        assert isinstance(message, Respawn)
        return self.reconcile(message.room)
