"""Seed policy "manager with GC": a manager service with a grace timer and a garbage collector.

One long-running manager process (so no races, and no Lambda: it runs as a small always-on
task) counts humans per room from webhooks. When its count drops to zero it removes the agent
``GRACE_SECONDS`` later unless someone joined; ``room_finished`` removes it at once. Every 30 s a
garbage collection lists LiveKit's rooms and our ECS tasks: it removes agents whose room LiveKit
no longer has, forgets agents whose task is gone, and stops tasks nobody tracks. Nothing heals a
lost or reordered webhook: a lost join leaves its human without an agent until someone else
joins, and a lost leave keeps the agent until LiveKit closes the room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from control_plane.events import LiveKitEvent
from control_plane.humans import is_human
from control_plane.ports import LiveKitUnavailable
from sim.model import WorkerBehaviour
from sim.policies.base import LEFT, SeedPolicy

if TYPE_CHECKING:
    from sim.world import World

GRACE_SECONDS = 60.0
GC_SECONDS = 30.0
# The manager itself: 0.25 vCPU, 0.5 GB on Fargate, always on.
MANAGER_TASK = (0.25, 0.5)


class ManagerGcPolicy(SeedPolicy):
    name: ClassVar[str] = "manager_gc"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour()
    service_tasks: ClassVar[tuple[tuple[float, float], ...]] = (MANAGER_TASK,)
    race_window_s: ClassVar[float] = 0.0
    lambda_based: ClassVar[bool] = False

    def start(self, world: World) -> None:
        super().start(world)
        world.every(GC_SECONDS, self.collect, first=GC_SECONDS / 2)

    def handle(self, event: LiveKitEvent) -> None:
        super().handle(event)
        if event.room is None:
            return
        name = event.room.name
        room = self.view(name)
        if event.event == "room_finished":
            room.humans.clear()
            if room.agent is not None:
                self.remove_agent(name, [room.agent])
        elif (
            event.event in LEFT
            and event.participant is not None
            and is_human(event.participant.kind)
            and not room.humans
            and room.agent is not None
        ):
            room.removal += 1
            self.world.after(GRACE_SECONDS, self._grace_over, name, room.removal)
        elif room.humans:
            room.removal += 1  # someone is there: a pending removal is off

    def _grace_over(self, name: str, removal: int) -> None:
        room = self.rooms[name]
        if room.removal == removal and not room.humans and room.agent is not None:
            self.remove_agent(name, [room.agent])

    def collect(self) -> None:
        world = self.world
        try:
            open_rooms = {live.name for live in world.livekit.list_rooms()}
        except LiveKitUnavailable:
            open_rooms = None
        tasks = {task.task_arn: task.room for task in world.ecs.list_tasks()}
        tracked = {self.rooms[name].agent: name for name in self.with_agent}
        for arn, name in tracked.items():
            if arn not in tasks:
                self.forget_agent(name)  # its task is gone
            elif open_rooms is not None and name not in open_rooms:
                self.remove_agent(name, [arn] if arn else [])
        for arn in sorted(set(tasks) - set(tracked)):
            world.ecs.stop(arn, "manager gc: untracked task")
