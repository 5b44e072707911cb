"""What happened in one simulated run: the ground truth the report measures, kept by the world.

Times are seconds from the start of the trace. The ledger records facts (a task ran from here to
there, an agent job was in this room then, this API was called) and never judges them; the
report turns them into figures, so a figure can always be traced back to these records.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass(slots=True)
class TaskLife:
    """One Fargate task, billed from RunTask until it stopped (or the run ended)."""

    arn: str
    room: str | None  # the room it was launched for; None for a fleet worker that serves any room
    launched_at: float
    ready_at: float | None = None
    ended_at: float | None = None
    crashed: bool = False
    prewarmed: bool = False  # running before the trace began (an always-on fleet): not a start


@dataclass(slots=True)
class JobLife:
    """An agent job running in a room: the agent is there, talking, from start to end."""

    room: str
    task_arn: str
    start: float
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """The world at one moment: what is billed and what is wanted."""

    at: float
    tasks: int
    jobs: int
    occupied_rooms: int
    humans: int


@dataclass
class Ledger:
    tasks: dict[str, TaskLife] = field(default_factory=dict)
    jobs: list[JobLife] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    # API calls by "service.Operation" (failed calls included), and Lambda invocations by function.
    calls: Counter[str] = field(default_factory=Counter)
    livekit_calls: int = 0
    aws_calls: int = 0
    invocations: Counter[str] = field(default_factory=Counter)
    lambda_ms: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # by function
    # LiveKit and AWS calls made inside each Lambda function (the capacity model splits by them).
    livekit_calls_by_function: Counter[str] = field(default_factory=Counter)
    aws_calls_by_function: Counter[str] = field(default_factory=Counter)
    dynamodb_reads: int = 0
    # Queries of worker items (live, open or pooled workers), and the items they returned.
    worker_listings: int = 0
    worker_items_listed: int = 0
    worker_listing_reads: int = 0  # read units of those queries (in ``dynamodb_reads`` too)
    # Of those, the pool's (every free or starting worker in the slot index) and their items.
    pool_listings: int = 0
    pool_items_listed: int = 0
    dynamodb_writes: int = 0
    sqs_requests: int = 0
    # RunTask calls that started nothing: refused (capacity) or throttled (launch limits).
    launches_refused: int = 0
    launches_throttled: int = 0
    # Dispatches no free worker took: LiveKit drops the job and the dispatch stays jobless.
    jobs_dropped: int = 0
    # Jobs ended by their task being stopped (not crashing) while their room had humans: one
    # room's end, or a scale-in, cutting another room's call. A worker drains instead.
    calls_cut: int = 0
    # Workers asked to drain (the pool's scale-in, and recycling): each exits once its jobs end.
    drains_requested: int = 0
    # Per room session (room, session index): when the first human's join webhook was first
    # attempted, and whether a slot the room could take was free then (below the pool's
    # capacity); and when the session's first dispatch was created. The control plane's part
    # lies between.
    first_join_webhook: dict[tuple[str, int], tuple[float, bool]] = field(default_factory=dict)
    first_dispatch: dict[tuple[str, int], float] = field(default_factory=dict)
    webhooks_delivered: int = 0
    webhooks_dropped: int = 0
    webhook_attempts_failed: int = 0
    timer_receives_failed: int = 0
    timer_messages_dead: int = 0
    task_events_failed: int = 0
    sweeps_failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    end: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def failed_launches(self) -> int:
        return self.launches_refused + self.launches_throttled

    @property
    def task_starts(self) -> int:
        return sum(1 for task in self.tasks.values() if not task.prewarmed)

    def call(self, operation: str, count: int = 1) -> None:
        """``operation`` is ``"<service>.<Operation>"``; LiveKit's and AWS's are also summed apart."""
        self.calls[operation] += count
        if operation.startswith("livekit."):
            self.livekit_calls += count
        else:
            self.aws_calls += count

    def stored(self, reads: int, writes: int, calls: int | None = None) -> None:
        """DynamoDB read and write units, and the calls that used them (one a unit unless said:
        a query reads many units in one call); the calls are AWS calls."""
        self.dynamodb_reads += reads
        self.dynamodb_writes += writes
        self.aws_calls += reads + writes if calls is None else calls

    def queued(self, requests: int) -> None:
        """SQS requests (also counted as AWS calls)."""
        self.sqs_requests += requests
        self.aws_calls += requests

    def invoked(self, function: str, duration_ms: float) -> None:
        """One Lambda invocation; its billed duration is estimated by the caller."""
        self.invocations[function] += 1
        self.lambda_ms[function] += duration_ms

    def error(self, where: str, error: BaseException) -> None:
        self.errors[f"{where}: {type(error).__name__}"] += 1
