"""The simulated world: LiveKit, ECS Fargate and the agent workers in one discrete-event loop.

Virtual time jumps to the next due event, so a day of traffic takes seconds. The world plays the
trace — sessions open, humans join and leave, LiveKit closes each room ``departure_timeout`` after
its last human and posts webhooks with the trace's delays, duplicates and losses, retrying a
failed delivery for 30 s — and runs Fargate (cold starts, launch limits, capacity errors,
crashes) and every agent worker (it registers, takes the jobs LiveKit hands it, leaves on its own
grace if its policy's worker has one, exits when it was asked to drain or has served its last
room). A policy sees the world only through the ports the core
uses (``SimLiveKit`` is a ``LiveKitGateway``, ``SimEcs`` an ``AgentRunner``, both over the
in-memory twins) and through the triggers AWS would give it: webhooks, ECS task state changes,
workers becoming ready, and the schedules it asks for. What happens is written to the ledger.

Everything runs on one thread in a fixed order, so a run is as reproducible as its trace.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.adapters.memory.runtime import InMemoryRunner, VirtualClock
from control_plane.events import EventParticipant, EventRoom, LiveKitEvent
from control_plane.humans import is_human
from control_plane.ports import (
    Dispatch,
    LaunchedTask,
    LaunchFailed,
    LaunchOutcomeUnknown,
    LiveKitUnavailable,
    LiveParticipant,
    LiveRoom,
    TaskSnapshot,
)
from sim.ledger import JobLife, Ledger, Sample, TaskLife
from sim.model import (
    AWS_CALL_MS,
    CONTAINER_EXITED,
    ECS_PAGE_SIZE,
    EPOCH,
    INVOCATION_BASE_MS,
    LIVEKIT_CALL_MS,
    PROGRESS_EVERY_S,
    SIGTERM_EXIT,
    USER_INITIATED,
    SimTask,
    TaskStateChange,
    TokenBucket,
    WorkerBehaviour,
    WorldConfig,
)
from sim.traces import Presence, Session, Trace, Webhook

if TYPE_CHECKING:
    from collections.abc import Sequence


class PolicyAdapter(Protocol):
    name: ClassVar[str]
    worker: ClassVar[WorkerBehaviour]
    # Always-on service tasks the policy itself runs (vCPU, GB each), billed like agent tasks.
    service_tasks: ClassVar[tuple[tuple[float, float], ...]]

    def start(self, world: World) -> None:
        """Wire up before the first event: build what it needs, ask for its schedules."""
        ...

    def on_webhook(self, event: LiveKitEvent) -> None:
        """LiveKit posted a webhook; raising answers 5xx and LiveKit retries it."""
        ...

    def on_room_opened(self, room: str) -> None:
        """LiveKit opened a room session (what automatic dispatch reacts to)."""
        ...

    def on_worker_ready(self, task: SimTask) -> None:
        """The worker in ``task`` registered with LiveKit and can take a job."""
        ...

    def on_task_state(self, change: TaskStateChange) -> None:
        """ECS reported one of our tasks RUNNING or STOPPED (EventBridge); raising retries it."""
        ...

    def on_job_started(self, task: SimTask, room: str, job_id: str) -> None:
        """The worker in ``task`` accepted a job in ``room`` (what it reports, if anything)."""
        ...

    def slot_free(self, room: str) -> bool:
        """Whether ``room`` would find a free agent slot now, as the policy counts them: below
        its capacity. Asked by the measurement only; it must change and bill nothing."""
        ...

    def on_job_ended(self, task: SimTask, room: str, job_id: str, duration: float) -> None:
        """A job of a worker that is still alive ended (a crashed worker reports nothing)."""
        ...


class World:
    def __init__(self, trace: Trace, policy: PolicyAdapter, config: WorldConfig | None = None) -> None:
        self.trace = trace
        self.policy = policy
        self.config = config or WorldConfig()
        self.clock = VirtualClock(EPOCH)
        self.ledger = Ledger()
        self.livekit_twin = InMemoryLiveKit(self.clock)
        self.ecs_twin = InMemoryRunner(self.clock)
        self.livekit = SimLiveKit(self)
        self.ecs = SimEcs(self)
        self.end = EPOCH + trace.end + self.config.tail_s
        self.tasks: dict[str, SimTask] = {}
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._faults = random.Random(f"{trace.seed}:{policy.name}:faults")
        # LiveKit's choice among free workers (see ``worker_for``).
        self._assignments = random.Random(f"{trace.seed}:{policy.name}:assignments")
        self._outages = {
            service: [(EPOCH + o.start, EPOCH + o.end) for o in trace.outages if o.service == service]
            for service in ("livekit", "ecs_capacity")
        }
        self._room_tasks: dict[str, list[SimTask]] = {}
        # Registered workers with a free slot, in the order they became free.
        self._free: dict[str, SimTask] = {}
        self._room_jobs: dict[str, dict[str, tuple[SimTask, JobLife]]] = {}
        self._humans: Counter[str] = Counter()
        self._emptied: Counter[str] = Counter()  # bumps whenever a room empties or fills
        self._launches: Counter[str] = Counter()
        self._stopped: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}  # room -> its open LiveKit session
        self.live_tasks = 0
        self.running_jobs = 0
        self.occupied_rooms = 0
        self.humans_present = 0

    # --- time -------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def elapsed(self) -> float:
        """Seconds since the start of the trace."""
        return self.clock.now() - EPOCH

    def at(self, when: float, action: Callable[..., None], *args: Any) -> None:
        """Run ``action(*args)`` at clock time ``when`` (never before now)."""
        heapq.heappush(self._heap, (max(when, self.clock.now()), next(self._seq), action, args))

    def after(self, delay: float, action: Callable[..., None], *args: Any) -> None:
        self.at(self.clock.now() + delay, action, *args)

    def every(self, period: float, action: Callable[[], None], first: float | None = None) -> None:
        """Run ``action`` every ``period`` seconds of trace time, starting at ``first``."""

        def tick() -> None:
            action()
            if self.clock.now() + period <= self.end:
                self.after(period, tick)

        self.at(EPOCH + (period if first is None else first), tick)

    def run(self, progress: Callable[[float, float], None] | None = None) -> Ledger:
        """Play the whole trace; ``progress(done, total)`` is called every two hours of trace time."""
        wall, cpu = time.perf_counter(), time.process_time()
        for s in self.trace.sessions:
            self.at(EPOCH + s.opened_at, self._open_session, s)
        for crash in self.trace.crashes:
            self.at(EPOCH + crash.at, self.crash, crash.room)
        self.every(self.config.sample_every_s, self._sample, first=0.0)
        self.every(600.0, self._forget_stopped)
        if progress is not None:
            total = self.end - EPOCH
            self.every(PROGRESS_EVERY_S, lambda: progress(self.elapsed(), total))
        self.policy.start(self)
        heap = self._heap
        clock = self.clock
        while heap and heap[0][0] <= self.end:
            when, _, action, args = heapq.heappop(heap)
            clock.advance(when - clock.now())
            action(*args)
        clock.advance(self.end - clock.now())
        self._finish()
        self.ledger.wall_seconds = time.perf_counter() - wall
        self.ledger.cpu_seconds = time.process_time() - cpu
        return self.ledger

    def _finish(self) -> None:
        """Whatever still runs is billed up to the end of the run."""
        done = self.elapsed()
        self.ledger.end = done
        for task in self.tasks.values():
            if task.alive:
                task.life.ended_at = done
        for jobs in self._room_jobs.values():
            for _, job in jobs.values():
                job.end = done

    def _sample(self) -> None:
        self.ledger.samples.append(
            Sample(
                self.elapsed(), self.live_tasks, self.running_jobs, self.occupied_rooms, self.humans_present
            )
        )

    # --- faults ------------------------------------------------------------------------------

    def _failing(self, service: str, rate: float) -> bool:
        now = self.clock.now()
        if any(start <= now < end for start, end in self._outages[service]):
            return True
        return rate > 0 and self._faults.random() < rate

    def livekit_out_within(self, seconds: float) -> bool:
        """A LiveKit outage of the trace covers part of the next ``seconds`` (draws nothing)."""
        now = self.clock.now()
        return any(start < now + seconds and now < end for start, end in self._outages["livekit"])

    def livekit_failing(self) -> bool:
        return self._failing("livekit", self.trace.faults.livekit_error_rate)

    def ecs_capacity_failing(self) -> bool:
        return self._failing("ecs_capacity", self.trace.faults.ecs_capacity_error_rate)

    # --- LiveKit rooms, humans, webhooks -----------------------------------------------------

    def _open_session(self, s: Session) -> None:
        live = self.livekit_twin.open_room(s.room, departure_timeout=s.departure_timeout)
        self._sessions[s.room] = s
        people = {p.sid: p for p in s.presences}
        for p in s.presences:
            self.at(EPOCH + p.join, self._join, s.room, p)
            self.at(EPOCH + p.leave, self._leave, s.room, p)
        for w in s.webhooks:
            presence = people.get(w.sid) if w.sid else None
            for attempt_at in w.deliveries:
                self.at(EPOCH + attempt_at, self._deliver, s, w, presence, live, 0)
        self.at(EPOCH + s.closed_at, self._close_session, s.room)
        self.policy.on_room_opened(s.room)

    def open_session(self, room: str) -> Session | None:
        """The room's open LiveKit session (what an app asking the join API knows of it)."""
        return self._sessions.get(room)

    def _join(self, room: str, p: Presence) -> None:
        self.livekit_twin.add_participant(room, p.sid, p.identity, p.kind)
        self.humans_present += 1
        self._humans[room] += 1
        if self._humans[room] == 1:
            self.occupied_rooms += 1
            self._emptied[room] += 1

    def _leave(self, room: str, p: Presence) -> None:
        self.livekit_twin.remove_participant(room, p.sid)
        self.humans_present -= 1
        self._humans[room] -= 1
        if self._humans[room] == 0:
            self.occupied_rooms -= 1
            self._emptied[room] += 1
            for dispatch_id, (task, _) in list(self._room_jobs.get(room, {}).items()):
                self._start_job_grace(room, dispatch_id, task)

    def _close_session(self, room: str) -> None:
        """LiveKit closes the room: its dispatches vanish and its agents are disconnected."""
        self.livekit_twin.close_room(room)
        self._sessions.pop(room, None)
        for dispatch_id in list(self._room_jobs.get(room, {})):
            self.end_job(room, dispatch_id, None)

    def _deliver(
        self, s: Session, w: Webhook, presence: Presence | None, live: LiveRoom, attempt: int
    ) -> None:
        event = LiveKitEvent(
            id=w.id,
            event=w.event,
            created_at=int(w.at + EPOCH),
            room=EventRoom(
                sid=live.sid,
                name=s.room,
                departure_timeout=s.departure_timeout,
                num_participants=self._humans[s.room],
                created_at=live.created_at,
            ),
            participant=EventParticipant(sid=presence.sid, identity=presence.identity, kind=presence.kind)
            if presence is not None
            else None,
        )
        key = (s.room, s.index)
        human = presence is not None and is_human(presence.kind)
        if w.event == "participant_joined" and human and key not in self.ledger.first_join_webhook:
            # The control plane's clock for this session starts at the first human's webhook; the
            # dispatch goal counts it when a slot was free and LiveKit was up for that second.
            measurable = self.policy.slot_free(s.room) and not self.livekit_out_within(1.0)
            self.ledger.first_join_webhook[key] = (self.elapsed(), measurable)
        try:
            self.policy.on_webhook(event)
        except Exception as error:
            self.ledger.webhook_attempts_failed += 1
            self.ledger.error("webhook", error)
            pauses = self.config.webhook_retry_s
            retry_at = self.clock.now() + (pauses[attempt] if attempt < len(pauses) else math.inf)
            if retry_at - (EPOCH + w.at) <= self.config.webhook_give_up_s:
                self.at(retry_at, self._deliver, s, w, presence, live, attempt + 1)
            else:
                self.ledger.webhooks_dropped += 1
            return
        self.ledger.webhooks_delivered += 1

    # --- tasks and workers -------------------------------------------------------------------

    def dispatch_created(self, room: str) -> None:
        """A dispatch exists in the room's open session: where the control plane's part ends."""
        session = self._sessions.get(room)
        if session is not None:
            self.ledger.first_dispatch.setdefault((room, session.index), self.elapsed())

    def task_launched(self, arn: str, room: str | None, launch_token: str) -> SimTask:
        """ECS accepted a launch: the task cold-starts, reports RUNNING, then its worker registers.

        The cold start of a room's n-th launch is drawn from the trace's seed, the room and n,
        so every policy meets the same cold starts."""
        key = room or "fleet"
        self._launches[key] += 1
        draw = random.Random(f"{self.trace.seed}:cold:{key}:{self._launches[key]}")
        cold = self.trace.faults.cold_start.sample(draw)
        life = TaskLife(arn, room, self.elapsed())
        self.ledger.tasks[arn] = life
        task = SimTask(arn, room, launch_token, life)
        self.tasks[arn] = task
        if room is not None:
            self._room_tasks.setdefault(room, []).append(task)
        self.live_tasks += 1
        pending = TaskStateChange(arn, room, launch_token, "PENDING", 1)
        self.after(self.config.ecs_event_delay_s, self._notify_task_state, pending, 0)
        self.after(max(1.0, cold - self.config.running_before_ready_s), self._task_running, task)
        self.after(cold, self._worker_ready, task)
        return task

    def start_fleet(self, size: int) -> None:
        """Workers that have been running all along (an ECS service): ready at the start."""
        for number in range(size):
            (launched,) = self.ecs_twin.launch(None, f"fleet-{number}")
            life = TaskLife(launched.task_arn, None, self.elapsed(), ready_at=self.elapsed(), prewarmed=True)
            self.ledger.tasks[launched.task_arn] = life
            task = SimTask(launched.task_arn, None, launched.launch_token, life, ready=True)
            self.tasks[task.arn] = task
            self._free[task.arn] = task
            self.live_tasks += 1

    def _task_running(self, task: SimTask) -> None:
        if task.alive:
            change = TaskStateChange(task.arn, task.room, task.launch_token, "RUNNING", 2)
            self.after(self.config.ecs_event_delay_s, self._notify_task_state, change, 0)

    def _worker_ready(self, task: SimTask) -> None:
        if not task.alive:
            return
        task.ready = True
        task.life.ready_at = self.elapsed()
        if self._takes_jobs(task):
            self._free[task.arn] = task
        self.policy.on_worker_ready(task)

    def _notify_task_state(self, change: TaskStateChange, attempt: int) -> None:
        try:
            self.policy.on_task_state(change)
        except Exception as error:
            self.ledger.error("task event", error)
            pauses = self.config.async_retry_s
            if attempt < len(pauses):
                self.after(pauses[attempt], self._notify_task_state, change, attempt + 1)
            else:
                self.ledger.task_events_failed += 1

    def worker_for(self, room: str) -> SimTask | None:
        """The worker LiveKit hands a new job in ``room`` to, None if nobody takes it.

        LiveKit offers a job to a registered worker drawn at random, weighted by its free
        capacity (livekit-server ``pkg/service/agentservice.go``, ``selectWorkerWeightedByLoad``:
        weight 1 - load, the worker's load being its share of slots in use); one that declines
        is left out and the draw repeats. The draw is over the free workers that would accept:
        any of them for fungible workers, else the room's own tasks and tasks launched with no
        room; with one slot each it is uniform, with several weighted by free slots. Draining and
        spent workers report themselves full. Seeded per trace and policy, so a run is
        reproducible.
        """
        if self.policy.worker.any_room:
            free = list(self._free.values())
        else:
            free = [t for t in self._free.values() if t.room is None or t.room == room]
        if not free:
            return None
        slots = self.policy.worker.slots
        if slots == 1:
            return self._assignments.choice(free)
        weights = [slots - len(t.jobs) for t in free]
        return self._assignments.choices(free, weights)[0]

    def would_take(self, room: str) -> bool:
        """Whether a free worker would take a job in ``room`` now (no draw is made)."""
        any_room = self.policy.worker.any_room
        return any(any_room or t.room is None or t.room == room for t in self._free.values())

    def _takes_jobs(self, task: SimTask) -> bool:
        limit = self.policy.worker.jobs_per_task
        spent = limit is not None and task.jobs_taken >= limit
        full = len(task.jobs) >= self.policy.worker.slots
        return task.alive and task.ready and not full and not task.draining and not spent

    def job_started(self, room: str, dispatch_id: str, job_id: str, task: SimTask) -> None:
        """The worker accepted the room's job; the agent is in the room after LiveKit's
        assignment time. The worker reports the job to its policy (``JobStarted``) at once."""
        task.jobs[dispatch_id] = (room, job_id)
        task.jobs_taken += 1
        if not self._takes_jobs(task):
            self._free.pop(task.arn, None)
        job = JobLife(room, task.arn, self.elapsed() + self.config.job_assignment_s)
        self.ledger.jobs.append(job)
        self._room_jobs.setdefault(room, {})[dispatch_id] = (task, job)
        self.running_jobs += 1
        if self._humans[room] == 0:
            self._start_job_grace(room, dispatch_id, task)
        self.policy.on_job_started(task, room, job_id)

    def end_job(self, room: str, dispatch_id: str, status: str | None) -> None:
        """The job is over; ``status`` is what its dispatch shows from now on (None: the
        dispatch itself is gone). A live worker reports how it ended; one that exits after its
        job, or was asked to drain or has served its last room and runs no other job, exits: a
        worker drains, so one room's end never cuts another room's call."""
        entry = self._room_jobs.get(room, {}).pop(dispatch_id, None)
        if entry is None:
            return
        task, job = entry
        job.end = max(self.elapsed(), job.start)
        self.running_jobs -= 1
        if status is not None and self.livekit_twin.get_dispatch(room, dispatch_id) is not None:
            self.livekit_twin.end_jobs(room, dispatch_id, status)
        _, job_id = task.jobs.pop(dispatch_id, (room, None))
        if not task.alive:
            return
        if job_id is not None:
            self.policy.on_job_ended(task, room, job_id, self.elapsed() - job.start)
        limit = self.policy.worker.jobs_per_task
        spent = limit is not None and task.jobs_taken >= limit
        if (task.draining or spent or self.policy.worker.exit_after_job) and not task.jobs:
            self._exit(task, 0)
        elif self._takes_jobs(task):
            self._free[task.arn] = task

    def _start_job_grace(self, room: str, dispatch_id: str, task: SimTask) -> None:
        """The job's own presence watch: with nobody human in the room for its grace, it ends."""
        grace = self.policy.worker.job_grace_s
        if grace is not None:
            self.after(grace, self._job_grace_over, room, dispatch_id, self._emptied[room])

    def _job_grace_over(self, room: str, dispatch_id: str, emptied: int) -> None:
        if self._emptied[room] == emptied and self._humans[room] == 0:
            self.end_job(room, dispatch_id, "JS_SUCCESS")

    def crash(self, room: str) -> None:
        """The agent serving ``room`` dies: the task with a job there, else the room's newest task."""
        jobs = self._room_jobs.get(room)
        if jobs:
            task = next(iter(jobs.values()))[0]
        else:
            own = [t for t in self._room_tasks.get(room, ()) if t.ready]
            if not own:
                return
            task = max(own, key=lambda t: t.life.launched_at)
        self.stop_task(task, crashed=True, stop_code=CONTAINER_EXITED, exit_code=1)

    def _exit(self, task: SimTask, code: int) -> None:
        self.stop_task(task, crashed=code != 0, stop_code=CONTAINER_EXITED, exit_code=code)

    def stop_task(
        self, task: SimTask, *, crashed: bool, stop_code: str, exit_code: int, by_api: bool = False
    ) -> None:
        """The task stops: billing ends, its jobs fail, ECS reports STOPPED a moment later. A
        stop that is no crash while a job's room has humans cuts their call (``calls_cut``)."""
        if not task.alive:
            return
        task.alive = False
        task.life.ended_at = self.elapsed()
        task.life.crashed = crashed
        self.live_tasks -= 1
        if task.room is not None:
            self._room_tasks[task.room].remove(task)
        self._free.pop(task.arn, None)
        for dispatch_id, (room, _) in list(task.jobs.items()):
            if not crashed and self._humans[room]:
                self.ledger.calls_cut += 1
            self.end_job(room, dispatch_id, "JS_FAILED")
            if crashed and (task.room is None or self.policy.worker.any_room):
                self.after(self.config.job_restart_s, self._restart_job, room, dispatch_id)
        if not by_api:
            self.ecs_twin.crash(task.arn, stop_code, exit_code)
        self._stopped[task.arn] = self.clock.now()
        change = TaskStateChange(
            task.arn, task.room, task.launch_token, "STOPPED", 3, stop_code=stop_code, exit_code=exit_code
        )
        self.after(self.config.ecs_event_delay_s, self._notify_task_state, change, 0)

    def drain_requested(self, task_arn: str) -> None:
        """The control plane asked the worker to drain: the worker reads it on its next
        heartbeat (until then LiveKit may still hand it a job), then takes no more jobs and,
        with none left, exits 0."""
        task = self.tasks.get(task_arn)
        if task is None or not task.alive or task.drain_asked:
            return
        task.drain_asked = True
        self.ledger.drains_requested += 1
        period = self.policy.worker.heartbeat_s or 15.0
        beat = self.heartbeat_at(task)
        self.at(self.clock.now() + period if beat is None else beat + period, self._drain_seen, task)

    def _drain_seen(self, task: SimTask) -> None:
        if not task.alive:
            return
        task.draining = True
        self._free.pop(task.arn, None)
        if not task.jobs:
            self._exit(task, 0)

    def heartbeat_at(self, task: SimTask) -> float | None:
        """When the worker last wrote its heartbeat (None: it never registered or has stopped)."""
        period = self.policy.worker.heartbeat_s
        if not task.alive or not task.ready or task.life.ready_at is None or period is None:
            return None
        since = self.elapsed() - task.life.ready_at
        return EPOCH + task.life.ready_at + math.floor(since / period) * period

    def _restart_job(self, room: str, dispatch_id: str) -> None:
        if self.livekit_twin.get_dispatch(room, dispatch_id) is not None and self._humans[room]:
            self.livekit_twin.delete_dispatch(room, dispatch_id)
            self.livekit.dispatch_automatically(room)

    def _forget_stopped(self) -> None:
        horizon = self.clock.now() - self.config.forget_stopped_after_s
        for arn, stopped_at in list(self._stopped.items()):
            if stopped_at < horizon:
                del self._stopped[arn]
                self.ecs_twin.tasks.pop(arn, None)
                self.ecs.forget(arn)

    # --- Lambda billing ----------------------------------------------------------------------

    def bill(self, function: str, livekit_calls: int, aws_calls: int, parallel: int = 1) -> None:
        """One Lambda invocation, its duration estimated from the calls it made, ``parallel``
        at a time (the sweeper's fan-out)."""
        calls_ms = livekit_calls * LIVEKIT_CALL_MS + aws_calls * AWS_CALL_MS
        self.ledger.invoked(function, INVOCATION_BASE_MS + calls_ms / max(parallel, 1))
        self.ledger.livekit_calls_by_function[function] += livekit_calls
        self.ledger.aws_calls_by_function[function] += aws_calls


class SimLiveKit:
    """``LiveKitGateway`` over the LiveKit twin, as the server API looks from AWS: 5xx during
    the trace's outages and at its background rate, 503 for a dispatch call to a room that is not
    open (the real adapter raises ``LiveKitUnavailable`` for it), and a dispatch gets a running
    job only if a worker takes it (see ``World.worker_for``)."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._twin = world.livekit_twin

    def _serve(self, operation: str) -> None:
        world = self._world
        world.ledger.call(f"livekit.{operation}")
        if world.livekit_failing():
            world.ledger.call("livekit.failed")
            raise LiveKitUnavailable(f"LiveKit {operation}: 503 (simulated)")

    def list_dispatches(self, room: str) -> list[Dispatch]:
        self._serve("ListDispatch")
        return self._twin.list_dispatches(room)

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        self._serve("CreateDispatch")
        if self._twin.get_room(room) is None:
            self._world.ledger.call("livekit.ListRooms")
            raise LiveKitUnavailable(f"LiveKit CreateDispatch: 503, room {room} is not open")
        dispatch = self._create(room, agent_name, metadata)
        self._world.dispatch_created(room)
        return dispatch

    def _create(self, room: str, agent_name: str, metadata: str) -> Dispatch:
        """The dispatch, and its job on the worker LiveKit picks; with no worker free it keeps
        zero jobs forever (the open-source server drops the job: there is no queue)."""
        task = self._world.worker_for(room)
        if task is None:
            self._world.ledger.jobs_dropped += 1
            return self._twin.create_dispatch(room, agent_name, metadata)
        self._twin.register_worker(agent_name)
        try:
            dispatch = self._twin.create_dispatch(room, agent_name, metadata)
        finally:
            self._twin.unregister_worker(agent_name)
        # the worker accepts as its task (agent_identity), which the control plane confirms
        job = self._twin.hand_job(room, task.arn, dispatch_id=dispatch.dispatch_id)
        self._world.job_started(room, dispatch.dispatch_id, job.job_id, task)
        return dispatch

    def dispatch_automatically(self, room: str) -> None:
        """LiveKit's automatic dispatch to a free worker when a room opens (no API call)."""
        if self._twin.get_room(room) is not None and self._world.worker_for(room) is not None:
            self._create(room, self._world.config.agent_name, "")
            self._world.dispatch_created(room)

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        self._serve("DeleteDispatch")
        if self._twin.get_room(room) is None:
            self._world.ledger.call("livekit.ListRooms")
            return
        self._twin.delete_dispatch(room, dispatch_id)
        self._world.end_job(room, dispatch_id, None)

    def list_participants(self, room: str) -> list[LiveParticipant]:
        self._serve("ListParticipants")
        return self._twin.list_participants(room)

    def list_rooms(self) -> list[LiveRoom]:
        self._serve("ListRooms")
        return self._twin.list_rooms()

    def create_room(self, name: str, departure_timeout: int, empty_timeout: int) -> LiveRoom:
        self._serve("CreateRoom")
        return self._twin.create_room(name, departure_timeout, empty_timeout)


class SimEcs:
    """``AgentRunner`` over the ECS twin, behind Fargate's launch limits and capacity errors.

    RunTask beyond 20 calls per second, or beyond the task-launch bucket, is throttled; the real
    adapter raises ``LaunchOutcomeUnknown`` for a throttle once botocore's retries are spent
    (folded into the one call here), and nothing was started. A capacity error is ECS's
    ``failures[]`` (``LaunchFailed``). ECS deduplicates a repeated ``clientToken``.
    """

    def __init__(self, world: World) -> None:
        self._world = world
        self._twin = world.ecs_twin
        limits = world.config.limits
        self._calls = TokenBucket(limits.runtask_burst, limits.runtask_rate, world.now())
        self._launches = TokenBucket(limits.task_burst, limits.task_rate, world.now())
        self._by_token: dict[str, list[str]] = {}

    def launch(self, room: str | None, launch_token: str, count: int = 1) -> list[LaunchedTask]:
        """One RunTask call of ``count`` tasks, for ``room`` or (None) for a pool. A call takes one
        RunTask token and ``count`` task tokens, all or nothing: how ECS splits a call that only
        partly fits is not documented, so a short bucket throttles the whole call."""
        world = self._world
        ledger = world.ledger
        now = world.now()
        ledger.call("ecs.RunTask")
        known = self._by_token.get(launch_token)
        if known is not None:
            return [LaunchedTask(arn, launch_token) for arn in known]
        if not self._calls.take(now):
            ledger.launches_throttled += 1
            raise LaunchOutcomeUnknown("ThrottlingException: RunTask rate exceeded (simulated)")
        if world.ecs_capacity_failing():
            ledger.launches_refused += 1
            raise LaunchFailed("RunTask returned no task: RESOURCE:FARGATE (simulated)")
        if not self._launches.take(now, count):
            ledger.launches_throttled += 1
            raise LaunchOutcomeUnknown("ThrottlingException: Fargate task launch rate exceeded (simulated)")
        launched = self._twin.launch(room or None, launch_token, count)
        self._by_token[launch_token] = [task.task_arn for task in launched]
        for task in launched:
            world.task_launched(task.task_arn, room or None, launch_token)
        return launched

    def find_launched(self, launch_token: str) -> str | None:
        """The real adapter lists our tasks and looks for the token: billed as that listing."""
        self._bill_listing(self._world.live_tasks)
        for arn in self._by_token.get(launch_token, ()):
            task = self._world.tasks.get(arn)
            if task is not None and task.alive:
                return arn
        return None

    def stop(self, task_arn: str, reason: str) -> None:
        world = self._world
        world.ledger.call("ecs.StopTask")
        self._twin.stop(task_arn, reason)
        task = world.tasks.get(task_arn)
        if task is not None:
            world.stop_task(
                task, crashed=False, stop_code=USER_INITIATED, exit_code=SIGTERM_EXIT, by_api=True
            )

    def list_tasks(self) -> list[TaskSnapshot]:
        listed = self._twin.list_tasks()
        self._bill_listing(len(listed))
        return listed

    def _bill_listing(self, tasks: int) -> None:
        """ListTasks pages of 100, then DescribeTasks in chunks of 100."""
        pages = max(1, -(-tasks // ECS_PAGE_SIZE))
        self._world.ledger.call("ecs.ListTasks", pages)
        if tasks:
            self._world.ledger.call("ecs.DescribeTasks", pages)

    def describe_tasks(self, task_arns: Sequence[str]) -> list[TaskSnapshot]:
        if task_arns:
            self._world.ledger.call("ecs.DescribeTasks", -(-len(task_arns) // ECS_PAGE_SIZE))
        return self._twin.describe_tasks(task_arns)

    def forget(self, task_arn: str) -> None:
        """ECS no longer knows the task (it stopped long ago); its token is forgotten with it."""
        task = self._world.tasks.get(task_arn)
        if task is not None:
            self._by_token.pop(task.launch_token, None)
