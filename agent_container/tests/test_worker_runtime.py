"""The worker's lifecycle end to end: a fake LiveKit worker, the real record and ready signal
on moto, the control plane's view of the item as the other side, and a virtual clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from control_plane_view import ControlPlaneView
from fakes import ACCEPTED, DECLINED, FakeLiveKitWorker, JobOffer, VirtualClock
from moto import mock_aws

from agent_worker.job_budget import JobBudget
from agent_worker.lifecycle import WorkerLifecycle
from agent_worker.registry import DynamoWorkerRecord, SqsReadySignal
from agent_worker.runtime import WorkerRuntime
from agent_worker.server import accept_jobs
from control_plane.worker_protocol import TIMER_MESSAGE, WorkerReady, WorkerRecord, WorkerStatus
from local.fixtures import create_table

TABLE = "lifecycle"
TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/agents/feedface"
ROLE_ID = "AROAEXAMPLEAGENTROLE1"
HEARTBEAT = 15.0
DRAIN_TIMEOUT = 90.0
UNREACHABLE_LIMIT = 300.0


@dataclass
class Task:
    """One Fargate task's worker, and what the control plane sees of it."""

    runtime: WorkerRuntime
    livekit: FakeLiveKitWorker
    clock: VirtualClock
    control_plane: ControlPlaneView
    sqs: Any
    queue_url: str
    budget: JobBudget

    async def offer(self, room: str) -> str | None:
        """LiveKit offers this worker ``room``'s job, through the worker's real request handler."""
        return await self.livekit.offer(room, accept_jobs(self.budget, TASK_ARN))

    def record(self) -> WorkerRecord:
        worker = self.control_plane.get()
        assert worker is not None
        return worker

    def ready_messages(self) -> list[object]:
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [TIMER_MESSAGE.validate_json(m["Body"]) for m in received.get("Messages", [])]

    async def after(self, seconds: float) -> int | None:
        """Let ``seconds`` pass, let background tasks run, then one runtime tick."""
        self.clock.advance(seconds)
        for _ in range(10):
            await asyncio.sleep(0)
        return await self.runtime.tick()


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def run_task(scenario: Callable[[Task], Awaitable[None]], jobs_per_task: int = 1) -> None:
    """Build a task (launched for "standup") inside an event loop and play ``scenario`` on it."""

    async def main() -> None:
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(dynamodb, TABLE)
        sqs = boto3.client("sqs", region_name="eu-west-1")
        queue_url = sqs.create_queue(QueueName="timers")["QueueUrl"]
        clock = VirtualClock()
        livekit = FakeLiveKitWorker()
        budget = JobBudget(jobs_per_task)
        runtime = WorkerRuntime(
            worker=livekit,
            record=DynamoWorkerRecord(
                dynamodb, TABLE, task_arn=TASK_ARN, task_role_id=ROLE_ID, capacity=1, launched_for="standup"
            ),
            ready_signal=SqsReadySignal(sqs, queue_url, task_arn=TASK_ARN, room="standup"),
            lifecycle=WorkerLifecycle(
                clock=clock, unreachable_limit=UNREACHABLE_LIMIT, drain_timeout=DRAIN_TIMEOUT
            ),
            clock=clock,
            heartbeat_seconds=HEARTBEAT,
            budget=budget,
        )
        control_plane = ControlPlaneView(dynamodb, TABLE, task_role_id=ROLE_ID, task_arn=TASK_ARN)
        await scenario(Task(runtime, livekit, clock, control_plane, sqs, queue_url, budget))

    asyncio.run(main())


def test_a_booting_worker_is_recorded_as_starting_then_signals_ready_on_registration(aws: None) -> None:
    async def scenario(task: Task) -> None:
        await task.runtime.tick()
        assert task.record().status is WorkerStatus.STARTING
        assert task.ready_messages() == []

        task.livekit.register()
        await task.after(0.2)

        assert task.record().status is WorkerStatus.READY
        assert task.record().is_ready(task.clock.now(), stale_after=45)
        assert task.ready_messages() == [WorkerReady(task_arn=TASK_ARN, room="standup")]

    run_task(scenario)


def test_the_ready_signal_waits_until_the_ready_record_is_written(aws: None) -> None:
    async def scenario(task: Task) -> None:
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        dynamodb.delete_table(TableName=TABLE)  # DynamoDB unavailable at registration
        task.livekit.register()
        await task.runtime.tick()
        assert task.ready_messages() == []

        create_table(dynamodb, TABLE)
        await task.after(1)

        assert task.record().status is WorkerStatus.READY
        assert task.ready_messages() == [WorkerReady(task_arn=TASK_ARN, room="standup")]

    run_task(scenario)


def test_the_record_is_heartbeaten_every_period_with_the_running_jobs(aws: None) -> None:
    async def scenario(task: Task) -> None:
        task.livekit.register()
        await task.runtime.tick()
        first_beat = task.record().heartbeat_at
        task.livekit.running_jobs["standup"] = "AJ_1"

        await task.after(HEARTBEAT - 1)
        assert task.record().heartbeat_at == first_beat

        await task.after(1)
        assert task.record().heartbeat_at == first_beat + HEARTBEAT
        assert task.record().jobs == {"standup": "AJ_1"}

    run_task(scenario)


def test_a_drain_flagged_by_the_control_plane_waits_for_the_jobs_then_exits_0(aws: None) -> None:
    async def scenario(task: Task) -> None:
        task.livekit.register()
        task.livekit.running_jobs["standup"] = "AJ_1"
        await task.runtime.tick()
        task.control_plane.mark_draining()

        assert await task.after(HEARTBEAT) is None
        assert await task.after(0.2) is None
        assert task.livekit.drain_started
        assert task.record().status is WorkerStatus.DRAINING
        assert await task.after(3600) is None  # the job ends on its own timers, however long

        task.livekit.finish_all_jobs()
        assert await task.after(1) == 0
        assert task.livekit.closed
        assert task.record().status is WorkerStatus.STOPPED

    run_task(scenario)


def test_sigterm_stops_the_worker_within_the_drain_timeout_even_with_a_job_running(aws: None) -> None:
    async def scenario(task: Task) -> None:
        task.livekit.register()
        task.livekit.running_jobs["standup"] = "AJ_1"
        await task.runtime.tick()

        task.runtime.terminate()
        assert await task.after(0) is None
        assert task.livekit.drain_started
        assert await task.after(DRAIN_TIMEOUT - 1) is None

        assert await task.after(1) == 0
        assert task.livekit.closed
        assert task.record().status is WorkerStatus.STOPPED

    run_task(scenario)


def test_a_worker_that_cannot_reach_livekit_for_five_minutes_exits_1(aws: None) -> None:
    async def scenario(task: Task) -> None:
        task.livekit.register()
        await task.runtime.tick()
        task.livekit.disconnect()
        assert await task.after(1) is None
        assert task.record().status is WorkerStatus.STARTING  # no longer offered jobs

        assert await task.after(UNREACHABLE_LIMIT - 1) is None
        assert await task.after(1) == 1
        assert task.livekit.closed

    run_task(scenario)


def test_a_livekit_worker_that_crashes_makes_the_process_exit_1(aws: None) -> None:
    async def scenario(task: Task) -> None:
        serving = asyncio.create_task(task.runtime.run())
        await asyncio.sleep(0.05)
        task.livekit.fail(RuntimeError("failed to connect to livekit after 35 attempts"))

        assert await asyncio.wait_for(serving, timeout=5) == 1

    run_task(scenario)


def test_a_failed_heartbeat_is_logged_and_the_worker_keeps_serving(
    aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(task: Task) -> None:
        task.livekit.register()
        await task.runtime.tick()
        boto3.client("dynamodb", region_name="eu-west-1").delete_table(TableName=TABLE)

        with caplog.at_level(logging.ERROR, logger="agent_worker.runtime"):
            assert await task.after(HEARTBEAT) is None

        assert "heartbeat failed; retrying at the next one" in caplog.messages

    run_task(scenario)


def test_run_returns_0_soon_after_sigterm_when_no_job_is_running(aws: None) -> None:
    async def scenario(task: Task) -> None:
        serving = asyncio.create_task(task.runtime.run())
        task.livekit.register()
        await asyncio.sleep(0.05)

        task.runtime.terminate()

        assert await asyncio.wait_for(serving, timeout=5) == 0
        assert task.record().status is WorkerStatus.STOPPED

    run_task(scenario)


def test_a_task_takes_any_rooms_job_then_declines_the_next_and_exits_0_after_its_last(aws: None) -> None:
    """JOBS_PER_TASK=2 on a task launched for "standup": rooms B and C get it (the control plane
    reserved its slots for them), D is declined without ending D's job (LiveKit offers it to
    another worker), and once B and C have ended the task drains and exits 0 for the pool to
    replace it."""

    async def scenario(task: Task) -> None:
        task.livekit.register()
        await task.runtime.tick()

        assert await task.offer("room-b") == ACCEPTED
        assert await task.offer("room-c") == ACCEPTED
        assert await task.offer("room-d") == DECLINED
        assert await task.after(HEARTBEAT) is None
        assert task.record().status is WorkerStatus.READY, "still serving the jobs it took"
        assert task.record().jobs == {"room-b": "AJ_room-b", "room-c": "AJ_room-c"}

        task.livekit.finish_job("room-b")
        assert await task.after(1) is None
        assert not task.livekit.drain_started, "room C's job still runs"

        task.livekit.finish_job("room-c")
        assert await task.after(1) is None
        assert task.livekit.drain_started
        assert await task.after(0.2) == 0
        assert task.livekit.closed
        assert task.record().status is WorkerStatus.STOPPED

    run_task(scenario, jobs_per_task=2)


def test_a_worker_does_not_recycle_while_its_last_job_waits_for_livekits_assignment(aws: None) -> None:
    """The job is taken at accept, but is not running until LiveKit assigns it: no drain yet."""

    async def scenario(task: Task) -> None:
        task.livekit.register()
        await task.runtime.tick()
        assigned = asyncio.Event()
        job = JobOffer(
            "room-b",
            assigned=assigned.wait,
            on_accept=lambda o: task.livekit.running_jobs.update({"room-b": o.id}),
        )
        accepting = asyncio.create_task(accept_jobs(task.budget, TASK_ARN)(job))  # type: ignore[arg-type]

        assert await task.after(1) is None
        assert not task.livekit.drain_started

        assigned.set()
        await accepting
        assert await task.after(1) is None
        assert not task.livekit.drain_started, "its job runs now"

    run_task(scenario)
