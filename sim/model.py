"""The simulated world's vocabulary: its settings and limits, the tasks and workers it runs, what
a policy's worker does on its own, and what ECS tells a policy. No behaviour lives here: the world
(``sim.world``) plays it, the policies (``sim.policies``) react to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.ledger import TaskLife

EPOCH = 1_800_000_000.0
AGENT_NAME = "voice-agent"
ECS_PAGE_SIZE = 100
USER_INITIATED = "UserInitiated"
CONTAINER_EXITED = "EssentialContainerExited"
SIGTERM_EXIT = 143
# Billed Lambda duration, estimated from the calls an invocation made (no real latency here):
# LiveKit Cloud answers in tens of milliseconds, an AWS call in single digits to tens.
INVOCATION_BASE_MS = 5.0
LIVEKIT_CALL_MS = 20.0
AWS_CALL_MS = 8.0
PROGRESS_EVERY_S = 7200.0
# LiveKit's own job assignment, from a dispatch to the agent's job running in the room: "a max
# dispatch time under 150 ms" (LiveKit docs, Agents > Agent dispatch, docs.livekit.io/agents/build/
# dispatch, read 2026-11). Every wait to "agent in room" includes it; the control plane's part
# ends when the dispatch exists.
LIVEKIT_JOB_ASSIGNMENT_S = 0.15


@dataclass(frozen=True)
class WorkerBehaviour:
    """What a policy's agent worker does on its own, inside its task."""

    job_grace_s: float | None = None  # the job ends after this long with no human in the room
    exit_after_job: bool = False  # the process, and so the task, exits when its job ends
    heartbeat_s: float | None = None  # period of its heartbeat write (billed as DynamoDB writes)
    # Takes whichever room's job LiveKit offers (fungible workers); else only the room it was
    # launched for, declining the rest (a task launched with no room takes any).
    any_room: bool = False
    # Rooms it serves in its life (``JOBS_PER_TASK``): then it takes no more and exits once its
    # last job has ended. None: no limit.
    jobs_per_task: int | None = None
    # Rooms it serves at once (``SLOTS_PER_TASK``); the task is sized at the single-room task's
    # vCPU and memory per slot (``prices.AGENT_TASK_VCPU``, ``AGENT_TASK_GB``).
    slots: int = 1


@dataclass(frozen=True)
class Limits:
    """Fargate's launch limits per account and Region ("AWS Fargate throttling quotas", ECS
    developer guide): a token bucket of 100 task launches refilled at 20 per second, and RunTask
    at 20 calls per second, burst and sustained."""

    task_burst: float = 100.0
    task_rate: float = 20.0
    runtask_burst: float = 20.0
    runtask_rate: float = 20.0


@dataclass(frozen=True)
class WorldConfig:
    limits: Limits = field(default_factory=Limits)
    agent_name: str = AGENT_NAME
    # EventBridge's delivery of an ECS task state change after it happened.
    ecs_event_delay_s: float = 2.0
    # ECS reports RUNNING this long before the worker has registered with LiveKit.
    running_before_ready_s: float = 5.0
    # LiveKit retries a webhook the endpoint failed, with these pauses, for 30 s after the event.
    webhook_retry_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    webhook_give_up_s: float = 30.0
    # Lambda's asynchronous invocation (EventBridge -> task events) retries twice: 1 and 2 min.
    async_retry_s: tuple[float, ...] = (60.0, 120.0)
    # LiveKit restarts a failed job on another free worker (JobRestartPolicy JRP_ON_FAILURE);
    # only workers that take any room's job benefit.
    job_restart_s: float = 5.0
    # A dispatch to the agent's job running in the room (see LIVEKIT_JOB_ASSIGNMENT_S).
    job_assignment_s: float = LIVEKIT_JOB_ASSIGNMENT_S
    # ECS forgets a stopped task about an hour after it stopped.
    forget_stopped_after_s: float = 3600.0
    sample_every_s: float = 60.0
    # The run goes on this long after the last session closed, so cleanups finish.
    tail_s: float = 900.0


@dataclass(frozen=True, slots=True)
class TaskStateChange:
    """An ECS task state change, as the EventBridge rule delivers it."""

    task_arn: str
    room: str | None
    launch_token: str
    last_status: str
    version: int
    stop_code: str | None = None
    exit_code: int | None = None


@dataclass(slots=True, eq=False)
class SimTask:
    """One Fargate task and the worker in it."""

    arn: str
    room: str | None
    launch_token: str
    life: TaskLife
    ready: bool = False
    alive: bool = True
    draining: bool = False  # it knows it was asked to drain (it reads its record on heartbeat)
    drain_asked: bool = False
    # The jobs it runs: dispatch id -> (room, job id), at most its behaviour's ``slots``.
    jobs: dict[str, tuple[str, str]] = field(default_factory=dict)
    jobs_taken: int = 0

    def rooms(self) -> dict[str, str]:
        """Room -> job id of each job it runs (what its heartbeat lists)."""
        return {room: job_id for room, job_id in self.jobs.values()}


class TokenBucket:
    def __init__(self, burst: float, rate: float, now: float) -> None:
        self._burst = burst
        self._rate = rate
        self._tokens = burst
        self._at = now

    def take(self, now: float, tokens: int = 1) -> bool:
        """Take ``tokens`` at once, or none."""
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < tokens:
            return False
        self._tokens -= tokens
        return True
