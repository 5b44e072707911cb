"""Seed policy "TTL sweep": no grace timer; a cleanup pass removes idle agents after a TTL.

Agents start on a join (the shared seed launcher). Every 60 s a pass lists our ECS tasks and,
for each room that has one, LiveKit's participants: humans there count as activity; a room with
no activity for ``AGENT_TTL_SECONDS`` (300) loses its agents — every task launched for it, so an
orphan from a race goes too. A task that is gone (crashed) is forgotten, so the next join
starts another; nothing relaunches it while the same people stay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from control_plane.humans import is_human
from control_plane.ports import LiveKitUnavailable
from sim.model import WorkerBehaviour
from sim.policies.base import SeedPolicy

if TYPE_CHECKING:
    from sim.world import World

AGENT_TTL_SECONDS = 300.0
PASS_SECONDS = 60.0


class TtlSweepPolicy(SeedPolicy):
    name: ClassVar[str] = "ttl_sweep"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour()

    def start(self, world: World) -> None:
        super().start(world)
        world.every(PASS_SECONDS, self.cleanup_pass, first=PASS_SECONDS / 2)

    def cleanup_pass(self) -> None:
        world = self.world
        ledger = world.ledger
        livekit0, aws0 = ledger.livekit_calls, ledger.aws_calls
        now = world.now()
        by_room: dict[str, list[str]] = {}
        for task in world.ecs.list_tasks():
            if task.room:
                by_room.setdefault(task.room, []).append(task.task_arn)
        for name in sorted(self.with_agent):
            if self.rooms[name].agent not in by_room.get(name, ()):
                self.forget_agent(name)  # its task is gone: forgotten, not replaced
        for name, arns in sorted(by_room.items()):
            room = self.view(name)
            try:
                people = world.livekit.list_participants(name)
            except LiveKitUnavailable:
                continue
            if any(is_human(p.kind) for p in people):
                room.last_activity = now
            elif now - room.last_activity >= AGENT_TTL_SECONDS:
                self.remove_agent(name, arns)
        ledger.stored(len(by_room), len(by_room))
        world.bill("cleanup", ledger.livekit_calls - livekit0, ledger.aws_calls - aws0)
