"""Figures for the webhook path: DynamoDB calls per event, handler time, cold import time.

Goals (issue 2): steady state ≤ 2 DynamoDB writes and 0 reads per participant event; median
in-process handler time ≤ 5 ms with in-memory ports; cold import of the webhook handler
≤ 400 ms. Run: ``python bench/webhook_path.py`` from the repo root.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
READ_OPS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
HUMANS_IN_STEADY_STATE = 50


def dynamodb_calls_per_event(humans: int = HUMANS_IN_STEADY_STATE) -> dict[str, float]:
    import boto3
    from moto import mock_aws

    from control_plane.adapters.dynamodb_store import DynamoDBStore
    from control_plane.adapters.memory.livekit import InMemoryLiveKit
    from control_plane.adapters.memory.runtime import (
        InMemoryMetrics,
        InMemoryRunner,
        InMemoryTimers,
        VirtualClock,
    )
    from control_plane.controller import RoomController
    from control_plane.ports import Ports
    from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus
    from local.fixtures import POLICY, CallCounter, create_table, event

    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, "bench")
        store = DynamoDBStore(client, "bench")
        clock = VirtualClock()
        timers = InMemoryTimers(clock)
        ports = Ports(
            store, store, InMemoryRunner(), InMemoryLiveKit(clock), timers, clock, InMemoryMetrics()
        )
        controller = RoomController(ports, POLICY, departure_timeout=70, event_ttl_seconds=86400)
        controller.handle_event(event("participant_joined", sid="PA_host", at=clock.now()))
        task_arn = store.get("room-1").agent.task_arn  # type: ignore[union-attr]
        ports.livekit.register_worker(POLICY.agent_name)  # type: ignore[attr-defined]
        store.put_worker(
            WorkerRecord(task_arn=task_arn, status=WorkerStatus.READY, capacity=1, heartbeat_at=clock.now())
        )
        controller.handle_timer(WorkerReady(task_arn=task_arn, room="room-1"))
        assert store.get("room-1").state.value == "active"  # type: ignore[union-attr]
        counter = CallCounter(client)
        events = 0
        for i in range(humans):
            controller.handle_event(event("participant_joined", sid=f"PA_{i}", at=clock.now()))
            controller.handle_event(event("participant_left", sid=f"PA_{i}", at=clock.now()))
            events += 2
    writes = sum(n for op, n in counter.calls.items() if op in WRITE_OPS)
    reads = sum(n for op, n in counter.calls.items() if op in READ_OPS)
    print(
        f"DynamoDB per participant event (agent active, {events} joins and leaves): "
        f"{writes / events:.2f} writes, {reads / events:.2f} reads (goal ≤ 2 writes, 0 reads) "
        f"{dict(counter.calls)}"
    )
    return {"writes_per_event": writes / events, "reads_per_event": reads / events}


def handler_time_with_memory_ports(samples: int = 2000) -> dict[str, float]:
    from control_plane import composition
    from control_plane.adapters.memory.livekit import InMemoryLiveKit
    from control_plane.adapters.memory.runtime import (
        InMemoryMetrics,
        InMemoryRunner,
        InMemoryTimers,
        VirtualClock,
    )
    from control_plane.adapters.memory.store import InMemoryStore
    from control_plane.ports import Ports
    from handlers import webhook
    from local.fixtures import LambdaContext, http_api_event, signed_headers, webhook_body

    clock = VirtualClock()
    store = InMemoryStore()
    ports = Ports(
        store,
        store,
        InMemoryRunner(),
        InMemoryLiveKit(clock),
        InMemoryTimers(clock),
        clock,
        InMemoryMetrics(),
    )
    composition.ports = lambda metrics: ports  # type: ignore[assignment]
    composition.livekit_credentials = lambda **_: ("bench-key", "bench-secret-bench-secret-bench-secret")
    events = []
    for i in range(samples):
        kind = "participant_joined" if i % 2 == 0 else "participant_left"
        body = webhook_body(kind, sid=f"PA_{i // 2}")
        events.append(
            http_api_event(body, signed_headers(body, "bench-key", "bench-secret-bench-secret-bench-secret"))
        )
    host = webhook_body("participant_joined", sid="PA_host")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        webhook.handler(
            http_api_event(host, signed_headers(host, "bench-key", "bench-secret-bench-secret-bench-secret")),
            LambdaContext(),
        )
    timings = []
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # EMF lines
        for api_event in events:
            started = time.perf_counter()
            response = webhook.handler(api_event, LambdaContext())
            timings.append((time.perf_counter() - started) * 1000)
            assert response["statusCode"] == 200, response
    timings.sort()
    print(
        f"webhook handler in-process, in-memory ports ({samples} events): "
        f"median {statistics.median(timings):.2f} ms, "
        f"p95 {timings[int(len(timings) * 0.95)]:.2f} ms   (goal median ≤ 5 ms)"
    )
    return {"median_ms": statistics.median(timings), "p95_ms": timings[int(len(timings) * 0.95)]}


COLD_START = """
import time
started = time.perf_counter()
import handlers.webhook
imported = time.perf_counter()
from control_plane.events import verify_webhook
from local.fixtures import signed_headers, webhook_body
body = webhook_body("participant_joined", sid="PA_1")
headers = signed_headers(body, "k", "secret-secret-secret-secret-secret-32")
verify_webhook(body, headers["authorization"], "k", "secret-secret-secret-secret-secret-32")
print(imported - started, time.perf_counter() - imported)
"""


def cold_start_time(runs: int = 5) -> dict[str, float]:
    """Import of the handler module, then the first signature check (which loads livekit-api)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    imports, first_checks = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, check=True
        )
        import_seconds, first_check_seconds = map(float, out.stdout.split())
        imports.append(import_seconds * 1000)
        first_checks.append(first_check_seconds * 1000)
    print(
        f"webhook handler cold import ({runs} fresh interpreters): "
        f"median {statistics.median(imports):.0f} ms "
        f"(goal ≤ 400 ms); first signature check after it adds {statistics.median(first_checks):.0f} ms"
    )
    return {"import_ms": statistics.median(imports), "first_check_ms": statistics.median(first_checks)}


if __name__ == "__main__":
    from bench import figures

    smoke = figures.smoke()  # make bench-smoke: a few samples, only to show it runs
    figures.write(
        "webhook_path",
        {
            "dynamodb": dynamodb_calls_per_event(humans=5 if smoke else HUMANS_IN_STEADY_STATE),
            "handler": handler_time_with_memory_ports(samples=50 if smoke else 2000),
            "cold_start": cold_start_time(runs=1 if smoke else 5),
            "goals": {"writes_per_event": 2, "reads_per_event": 0, "median_ms": 5, "import_ms": 400},
        },
    )
