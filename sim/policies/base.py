"""What a policy is to the world, and the launcher the seed policies share.

A policy is a small adapter: it gets the triggers AWS and LiveKit would give a control plane
(webhooks, ECS task state changes, a worker becoming ready, schedules it asks the world for) and
acts only through the world's ports. ``default`` wraps the real core; the seed policies are the
control planes teams write first, kept as simple as they are in real life.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from control_plane.events import LiveKitEvent
from control_plane.humans import is_human
from control_plane.ports import LaunchFailed, LaunchOutcomeUnknown, LiveKitUnavailable
from sim.model import SimTask, TaskStateChange, WorkerBehaviour

if TYPE_CHECKING:
    from sim.world import World

JOINED = frozenset({"participant_joined"})
LEFT = frozenset({"participant_left", "participant_connection_aborted"})


class BasePolicy:
    """No-op reactions; a policy overrides what it listens to."""

    name: ClassVar[str] = "base"
    worker: ClassVar[WorkerBehaviour] = WorkerBehaviour()
    service_tasks: ClassVar[tuple[tuple[float, float], ...]] = ()

    def start(self, world: World) -> None:
        self.world = world

    def on_webhook(self, event: LiveKitEvent) -> None:
        return None

    def on_room_opened(self, room: str) -> None:
        return None

    def on_worker_ready(self, task: SimTask) -> None:
        return None

    def on_task_state(self, change: TaskStateChange) -> None:
        return None

    def on_job_started(self, task: SimTask, room: str, job_id: str) -> None:
        return None

    def slot_free(self, room: str) -> bool:
        """A free worker that would take the room's job."""
        return self.world.would_take(room)

    def on_job_ended(self, task: SimTask, room: str, job_id: str, duration: float) -> None:
        return None


@dataclass
class RoomView:
    """What a seed control plane believes about a room, from what it was told."""

    humans: set[str] = field(default_factory=set)
    agent: str | None = None  # the task ARN it recorded
    recorded_at: float = 0.0  # when that record became visible to other handlers
    last_activity: float = 0.0
    removal: int = 0  # bumps to cancel a scheduled removal


class SeedPolicy(BasePolicy):
    """The control plane teams write first, shared by the seed policies.

    A human joins → if the room has no agent on record, RunTask for the room; the worker, once
    registered, dispatches itself into its room. Nothing is claimed: a handler reads the room,
    launches, then writes the task ARN, so a second trigger inside that window (a duplicate
    webhook, a second person joining) launches a second agent — what concurrent Lambdas do
    without a conditional write. Removing an agent deletes the room's dispatches and stops its
    task. A launch ECS refuses or throttles is not retried.
    """

    # Read → RunTask → write: how long another handler still reads "no agent" (0: one process).
    race_window_s: ClassVar[float] = 0.6
    # Whether handlers run as Lambda functions (billed) with a DynamoDB room item per event.
    lambda_based: ClassVar[bool] = True
    dispatch_retries: ClassVar[int] = 3

    def start(self, world: World) -> None:
        super().start(world)
        self.rooms: dict[str, RoomView] = {}
        self.with_agent: set[str] = set()  # rooms whose view records an agent
        self._tokens = 0

    def view(self, room: str) -> RoomView:
        found = self.rooms.get(room)
        if found is None:
            found = self.rooms[room] = RoomView()
        return found

    def on_webhook(self, event: LiveKitEvent) -> None:
        world = self.world
        ledger = world.ledger
        livekit0, aws0 = ledger.livekit_calls, ledger.aws_calls
        try:
            self.handle(event)
        finally:
            if self.lambda_based:
                ledger.stored(1, 1)
                world.bill("webhook", ledger.livekit_calls - livekit0, ledger.aws_calls - aws0)

    def handle(self, event: LiveKitEvent) -> None:
        """Joins and leaves as seen by the seed policies; a policy adds what else it does."""
        if event.room is None:
            return
        room = self.view(event.room.name)
        participant = event.participant
        if participant is None or not is_human(participant.kind):
            return
        room.last_activity = self.world.now()
        if event.event in JOINED:
            room.humans.add(participant.sid)
            self.ensure_agent(event.room.name, room)
        elif event.event in LEFT:
            room.humans.discard(participant.sid)

    def ensure_agent(self, name: str, room: RoomView) -> None:
        now = self.world.now()
        if room.agent is not None and now >= room.recorded_at:
            return
        self._tokens += 1
        try:
            (launched,) = self.world.ecs.launch(name, f"{self.name}-{self._tokens}")
        except (LaunchFailed, LaunchOutcomeUnknown):
            return
        room.agent = launched.task_arn  # the last writer wins; an earlier racer's task is orphaned
        room.recorded_at = now + self.race_window_s
        self.with_agent.add(name)

    def forget_agent(self, name: str) -> None:
        room = self.rooms.get(name)
        if room is not None:
            room.agent = None
        self.with_agent.discard(name)

    def on_worker_ready(self, task: SimTask) -> None:
        self._dispatch_self(task, 0)

    def _dispatch_self(self, task: SimTask, attempt: int) -> None:
        """The worker joins the room it was started for (it dispatches itself)."""
        if not task.alive or task.room is None or task.jobs:
            return
        try:
            self.world.livekit.create_dispatch(task.room, self.world.config.agent_name, "")
        except LiveKitUnavailable:
            if attempt < self.dispatch_retries:
                self.world.after(5.0, self._dispatch_self, task, attempt + 1)
            else:
                self.dispatch_failed(task)

    def dispatch_failed(self, task: SimTask) -> None:
        """The worker never got into its room (closed before it was ready): it stays idle."""
        return None

    def remove_agent(self, name: str, task_arns: list[str]) -> None:
        """Delete the room's dispatches and stop its tasks; a LiveKit error leaves dispatches
        for the task stop to end (the job dies with its task)."""
        livekit = self.world.livekit
        try:
            for dispatch in livekit.list_dispatches(name):
                livekit.delete_dispatch(name, dispatch.dispatch_id)
        except LiveKitUnavailable:
            pass
        for arn in task_arns:
            self.world.ecs.stop(arn, f"{self.name}: agent removed")
        room = self.rooms.get(name)
        if room is not None and room.agent in task_arns:
            self.forget_agent(name)
