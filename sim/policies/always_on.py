"""Always-on fleet: what teams run today as an ECS service, sized for the trace's peak.

A fleet of warm workers, one room each, as many as the trace ever has LiveKit rooms open at
once, running the whole time. LiveKit's automatic dispatch gives each room session a job on a
free worker when it opens; the agent stays until LiveKit closes the room. When a worker crashes
LiveKit restarts its job on a free worker, and the ECS service replaces the task (a cold start).
There is no control plane, so no Lambda, DynamoDB or SQS cost; the fleet is the bill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from control_plane.ports import LaunchFailed, LaunchOutcomeUnknown
from sim.model import TaskStateChange, WorkerBehaviour
from sim.policies.base import BasePolicy
from sim.traces import Trace

if TYPE_CHECKING:
    from sim.world import World

REPLACE_RETRY_SECONDS = 10.0


def peak_open_rooms(trace: Trace) -> int:
    """The most LiveKit room sessions open at one moment in the trace."""
    edges = sorted([(s.opened_at, 1) for s in trace.sessions] + [(s.closed_at, -1) for s in trace.sessions])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


class AlwaysOnPolicy(BasePolicy):
    name: ClassVar[str] = "always_on"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour()

    def start(self, world: World) -> None:
        super().start(world)
        self.size = peak_open_rooms(world.trace)
        self._replacements = 0
        world.start_fleet(self.size)

    def on_room_opened(self, room: str) -> None:
        self.world.livekit.dispatch_automatically(room)

    def on_task_state(self, change: TaskStateChange) -> None:
        if change.last_status == "STOPPED" and change.room is None:
            self._replace()

    def _replace(self) -> None:
        """The ECS service starts a replacement, and keeps trying while ECS says no."""
        self._replacements += 1
        try:
            self.world.ecs.launch(None, f"fleet-replacement-{self._replacements}")
        except (LaunchFailed, LaunchOutcomeUnknown):
            self.world.after(REPLACE_RETRY_SECONDS, self._replace)
