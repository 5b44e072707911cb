"""One sweep over 10,000 tracked rooms against the fake LiveKit with 20 ms per call.

Goal (issue 3): a sweep finishes in ≤ 30 s with bounded concurrency (asyncio + a semaphore
on the LiveKit gateway's one event loop). The rooms are a mix: most are healthy, and some
need each kind of repair (lost grace timer, duplicate or dead dispatch, missed leave, room
closed in LiveKit) beside orphan tasks and leftover dispatches in untracked rooms. The real
``LiveKitApiGateway`` talks Twirp to ``tests/fakes/livekit_server.py``; DynamoDB, ECS and SQS
are the in-memory twins, counting the calls the real adapters would make.

Run: ``python bench/sweep_scale.py`` from the repo root.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from control_plane.adapters.livekit_gateway import LiveKitApiGateway
from control_plane.adapters.memory.livekit import InMemoryLiveKit
from control_plane.adapters.memory.runtime import (
    InMemoryMetrics,
    InMemoryRunner,
    InMemoryTimers,
    VirtualClock,
)
from control_plane.adapters.memory.store import InMemoryStore
from control_plane.controller import RoomController
from control_plane.ports import Ports
from control_plane.room import Agent, Grace, Human, Room
from control_plane.sweeper import Sweeper
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from tests.fakes.livekit_server import FakeLiveKitServer
from tests.harness import AGENT_NAME, POLICY, SWEEP_POLICY

LATENCY_SECONDS = 0.020
CONCURRENCY = 50
LAMBDA_TIMEOUT_SECONDS = 55.0
GOAL_SECONDS = 30.0

# Tracked rooms by what they need from the sweep (10,000 in all).
MIX = {
    "healthy": 7_000,
    "grace_running": 1_000,
    "grace_timer_lost": 500,
    "starting": 500,
    "duplicate_dispatch": 300,
    "dead_dispatch": 200,
    "closed_in_livekit": 200,
    "missed_leave": 200,
    "failed": 100,
}
ORPHAN_TASKS = 100
UNTRACKED_WITH_LEFTOVER = 500
UNTRACKED_WITHOUT_AGENT = 500


class World:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.livekit = InMemoryLiveKit(self.clock)
        self.store = InMemoryStore()
        self.runner = InMemoryRunner(self.clock)
        self.metrics = InMemoryMetrics()
        self.timers = InMemoryTimers(self.clock)
        self.livekit.register_worker(AGENT_NAME)

    def room(self, name: str, kind: str) -> None:
        now = self.clock.now()
        live = self.livekit.open_room(name)
        token = f"token-{name}"
        task = self.runner.launch(name, token).task_arn
        agent = Agent(launch_token=token, launch_claimed_at=now - 600, room_sid=live.sid, task_arn=task)
        humans: dict[str, Human] = {}
        if kind not in ("grace_running", "grace_timer_lost", "closed_in_livekit"):
            humans = {f"PA_{name}": Human(identity="human", joined_at=now - 600)}
            if kind != "missed_leave":
                self.livekit.add_participant(name, f"PA_{name}", "human")
        room = Room(name=name, sid=live.sid, humans=humans, created_at=now - 600, updated_at=now - 120)
        if kind == "failed":
            room = room.model_copy(
                update={"failed_at": now - 60, "crashes": (now - 300, now - 200, now - 60)}
            )
            self.runner.stop(task, "crashed")
            self.store.create(room)
            return
        if kind != "starting":
            self.store.put_worker(
                WorkerRecord(
                    task_arn=task,
                    status=WorkerStatus.READY,
                    capacity=1,
                    heartbeat_at=now,
                    jobs={name: "AJ"},
                    launched_for=name,
                )
            )
            dispatch = self.livekit.create_dispatch(name, AGENT_NAME, "{}")
            agent = agent.model_copy(update={"dispatch_id": dispatch.dispatch_id, "dispatched_at": now - 600})
            if kind == "dead_dispatch":
                self.livekit.end_jobs(name, dispatch.dispatch_id, "JS_FAILED")
            if kind == "duplicate_dispatch":
                self.livekit.create_dispatch(name, AGENT_NAME, "{}")
        if kind.startswith("grace"):
            deadline = now + 180 if kind == "grace_running" else now - 30
            room = room.model_copy(update={"grace": Grace(generation=1, deadline=deadline), "generation": 1})
        if kind == "closed_in_livekit":
            self.livekit.close_room(name)
        self.store.create(room.model_copy(update={"agent": agent, "launches": 1}))

    def populate(self) -> None:
        for n in range(UNTRACKED_WITH_LEFTOVER):
            name = f"untracked-{n:04d}"
            self.livekit.open_room(name)
            self.livekit.create_dispatch(name, AGENT_NAME, "{}")
        for n in range(UNTRACKED_WITHOUT_AGENT):
            self.livekit.open_room(f"other-{n:04d}")
        for n in range(ORPHAN_TASKS):
            self.runner.start_foreign(f"gone-{n}", f"orphan-{n}", created_at=self.clock.now())
        self.clock.advance(540)
        number = 0
        for kind, count in MIX.items():
            for _ in range(count):
                self.room(f"room-{number:05d}", kind)
                number += 1
        # A minute on: leftovers and orphans are 10 minutes old (past AGENT_TTL and the start
        # timeout), tracked rooms' dispatches are past the settle time, running graces are not over.
        self.pass_time(60)

    def pass_time(self, seconds: float) -> None:
        """Time goes by; the workers that still run keep heartbeating."""
        self.clock.advance(seconds)
        running = {task.arn for task in self.runner.running()}
        for worker in self.store.live_workers():
            if worker.task_arn in running:
                self.store.put_worker(worker.model_copy(update={"heartbeat_at": self.clock.now()}))


def sweep_once(world: World, server: FakeLiveKitServer, gateway: LiveKitApiGateway, label: str) -> float:
    ports = Ports(world.store, world.store, world.runner, gateway, world.timers, world.clock, world.metrics)
    policy = replace(SWEEP_POLICY, concurrency=CONCURRENCY)
    sweeper = Sweeper(
        ports,
        gateway,
        lambda p: RoomController(p, POLICY, departure_timeout=70, event_ttl_seconds=86400),
        policy,
    )
    server.requests.clear()
    world.runner.calls.clear()
    reads, writes = world.store.reads, world.store.writes
    started = time.monotonic()
    report = sweeper.sweep(lambda: LAMBDA_TIMEOUT_SECONDS - (time.monotonic() - started))
    elapsed = time.monotonic() - started

    print(f"\n-- {label}")
    print(f"sweep wall time        {elapsed:6.2f} s   (goal ≤ {GOAL_SECONDS:.0f} s)")
    print(f"rooms visited          {report.rooms_visited} of {report.rooms_total}")
    print(f"complete               {report.complete}")
    print(
        f"LiveKit calls          {sum(server.requests.values()):6d}   {dict(sorted(server.requests.items()))}"
    )
    print(
        f"DynamoDB (twin)        {world.store.reads - reads:6d} reads, {world.store.writes - writes} writes, "
        "+ 2 index queries (paginated)"
    )
    print(f"ECS (twin)             {dict(sorted(world.runner.calls.items()))}")
    cleaned = {
        key: value
        for key, value in report.counts.items()
        if key.split("[")[0]
        in (
            "DispatchesDeleted",
            "TasksStopped",
            "GraceExpiries",
            "RoomsGone",
            "ParticipantsReconciled",
            "AgentsRemoved",
            "DispatchesCreated",
            "SweepErrors",
        )
    }
    print(f"cleaned                {cleaned}")
    return elapsed


def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    world = World()
    build = time.monotonic()
    world.populate()
    print(
        f"{sum(MIX.values())} tracked rooms, {ORPHAN_TASKS} orphan tasks, "
        f"{UNTRACKED_WITH_LEFTOVER + UNTRACKED_WITHOUT_AGENT} untracked LiveKit rooms "
        f"(built in {time.monotonic() - build:.1f} s); "
        f"LiveKit latency {LATENCY_SECONDS * 1000:.0f} ms per call, concurrency {CONCURRENCY}"
    )
    with FakeLiveKitServer(world.livekit, latency=LATENCY_SECONDS) as server:
        gateway = LiveKitApiGateway(server.url, lambda: (server.api_key, server.api_secret))
        try:
            first = sweep_once(world, server, gateway, "first sweep (repairs)")
            world.pass_time(60)
            second = sweep_once(world, server, gateway, "second sweep, one minute later")
        finally:
            gateway.close()
    states = Counter(room.state.value for room in world.store.rooms_needing_attention())
    print(f"\nrooms still tracked by state: {dict(sorted(states.items()))}")
    return 0 if max(first, second) <= GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
