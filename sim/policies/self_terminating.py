"""Seed policy "self-terminating agent only": the agent leaves on its own, nothing cleans up.

Agents start on a join (the shared seed launcher). The agent watches its room and ends its job
60 s after the last human leaves (or when LiveKit closes the room); its process then exits and
clears the room's record. There is no control-plane cleanup. A crashed agent clears nothing: the
launcher notices only when its heartbeat (every 60 s) is ``NOTICE_AFTER_SECONDS`` (5 min) old,
checked once a minute, and then starts another if it believes humans are still there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from sim.model import CONTAINER_EXITED, EPOCH, SimTask, TaskStateChange, WorkerBehaviour
from sim.policies.base import SeedPolicy

if TYPE_CHECKING:
    from sim.world import World

GRACE_SECONDS = 60.0
HEARTBEAT_SECONDS = 60.0
NOTICE_AFTER_SECONDS = 300.0
CHECK_SECONDS = 60.0


class SelfTerminatingPolicy(SeedPolicy):
    name: ClassVar[str] = "self_terminating"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour(
        job_grace_s=GRACE_SECONDS, exit_after_job=True, heartbeat_s=HEARTBEAT_SECONDS
    )

    def start(self, world: World) -> None:
        super().start(world)
        world.every(CHECK_SECONDS, self.liveness_check, first=CHECK_SECONDS / 2)

    def on_task_state(self, change: TaskStateChange) -> None:
        """A clean exit is the agent clearing its own record on the way out (no ECS events are
        read: this stands for the agent's last write)."""
        if change.last_status == "STOPPED" and change.exit_code == 0 and change.room is not None:
            room = self.rooms.get(change.room)
            if room is not None and room.agent == change.task_arn:
                self.forget_agent(change.room)

    def dispatch_failed(self, task: SimTask) -> None:
        """Its room is gone: the agent finds nobody there and leaves after its grace, like any."""
        self.world.after(GRACE_SECONDS, self._leave_empty, task)

    def _leave_empty(self, task: SimTask) -> None:
        if task.alive and not task.jobs:
            self.world.stop_task(task, crashed=False, stop_code=CONTAINER_EXITED, exit_code=0)

    def liveness_check(self) -> None:
        world = self.world
        ledger = world.ledger
        livekit0, aws0 = ledger.livekit_calls, ledger.aws_calls
        now = world.now()
        for name in sorted(self.with_agent):
            room = self.rooms[name]
            task = world.tasks.get(room.agent) if room.agent else None
            last_beat = self._last_beat(task)
            if last_beat is not None and now - last_beat < NOTICE_AFTER_SECONDS:
                continue
            self.forget_agent(name)
            if room.humans:
                self.ensure_agent(name, room)
        ledger.stored(len(self.with_agent), 0)
        world.bill("liveness", ledger.livekit_calls - livekit0, ledger.aws_calls - aws0)

    def _last_beat(self, task: SimTask | None) -> float | None:
        """The worker's last heartbeat; a task still starting counts from its launch."""
        if task is None:
            return None
        life = task.life
        if life.ready_at is None:
            return EPOCH + life.launched_at
        if task.alive:
            return self.world.heartbeat_at(task)
        ended = life.ended_at if life.ended_at is not None else life.ready_at
        return EPOCH + life.ready_at + (ended - life.ready_at) // HEARTBEAT_SECONDS * HEARTBEAT_SECONDS
