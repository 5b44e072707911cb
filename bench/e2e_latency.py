"""Join latency on the real livekit-server (issue 19): how long a human waits for the agent.

Three rows, each over ``--joins`` rooms (30 by default; ``make bench-e2e JOINS=3`` is the smoke
size CI runs), with the real agent worker (keyless pipeline) and WebRTC humans, inside the
private network namespace of the e2e tier:

- ``warm``: a ready worker is waiting (``WARM_TASKS=2``); the human connects with a token of
  its own (the webhook path); time from connected to the agent participant visible to it.
- ``early``: the app calls the join API first (the agent is asked for before the human
  connects), then the human connects at once; time from connected to the agent visible (0 if
  it was already there).
- ``cold``: no worker; a worker process is started for the room. Its process start (launch to
  registered and ready) is reported apart: on Fargate that part is the image pull and boot.

Each room is deleted (``DeleteRoom``) after its join: LiveKit's ``room_finished`` releases the
worker's slot at once, and ``JOBS_PER_TASK=1000`` lets the worker take the next room.
Goals: warm p99 <= 1 s, early p99 <= 0.5 s; LiveKit Cloud documents < 150 ms dispatch.
Writes ``bench/results/e2e_latency.json`` (``e2e_latency_smoke.json`` below 30 joins).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from local.e2e.netns import NODE_IP_ENV  # noqa: E402
from local.e2e.netns import main as in_namespace  # noqa: E402

FULL_JOINS = 30
GOALS = {"warm": 1.0, "early": 0.5}
LIVEKIT_CLOUD_DISPATCH = 0.150
"""LiveKit Cloud's documented agent dispatch time (under 150 ms), for comparison."""
JOIN_TIMEOUT = 90.0
REUSED_WORKER = {"JOBS_PER_TASK": "1000"}
"""A worker serves join after join (a room at a time), so a warm join rarely waits for a refill."""
WARM_TASKS = 2
WORKER_SETTLE_SECONDS = 5.0
"""A worker reports ready when it registers with LiveKit; its idle job process is still starting
(seconds on 2 busy cores). A warm worker has been ready for a while: give it that."""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": round(at(0.50), 3),
        "p95": round(at(0.95), 3),
        "p99": round(at(0.99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


STAGES = (
    ("human_connecting", "the human began connecting (its connect returns at 0)"),
    ("webhook", "the human's participant_joined applied by the webhook function"),
    ("dispatch", "CreateDispatch answered (the webhook's, or the join API's)"),
    ("job_request", "the worker received LiveKit's job request"),
    ("process", "a warm job process handed the job (accept and assignment before it)"),
    ("entrypoint", "the job's entrypoint running"),
    ("connecting", "the agent's room connection begun"),
    ("agent_connected", "the agent connected to the room"),
    ("seen", "the human saw the agent participant"),
)
"""Where a join's time goes: each instant in seconds after the human connected (negative: before
it, as the early request's dispatch), read from the stack's and the workers' logs."""
STACK_STAGES = {"participant joined": "webhook", "dispatch created": "dispatch"}
"""The control plane's log lines that mark a stage (functions.log)."""
JOB_STAMPS = {
    "job_request": "received_at",
    "process": "launched_at",
    "entrypoint": "entrypoint_at",
    "connecting": "connecting_at",
    "agent_connected": "connected_at",
}


def _log_records(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    return records


def _stack_time(record: dict[str, Any]) -> float:
    """A Powertools record's time (``2026-12-06 23:41:39,576+0000``), unix seconds."""
    return datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()


def stage_times(stack_dir: Path, room: str) -> dict[str, float]:
    """The instants of :data:`STAGES` for ``room`` (unix seconds), those the logs show."""
    found: dict[str, float] = {}
    for record in _log_records(stack_dir / "functions.log"):
        if record.get("room") != room or "timestamp" not in record:
            continue
        stage = STACK_STAGES.get(record.get("message", ""))
        if stage is not None and stage not in found:
            found[stage] = _stack_time(record)
    for task_log in stack_dir.glob("task-*.log"):
        for record in _log_records(task_log):
            if record.get("message") == "job dispatch timeline" and record.get("room") == room:
                found |= {stage: float(record[key]) for stage, key in JOB_STAMPS.items() if key in record}
                if "dispatch_latency" in record:
                    found["lk_job_dispatch_latency"] = float(record["dispatch_latency"])
    return found


def breakdown(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Per stage, p50/p95 of its instant after the human connected; and livekit-agents' own
    ``lk.job.dispatch_latency`` (job request to entrypoint)."""
    stages: dict[str, Any] = {}
    for stage, what in STAGES:
        offsets = [sample[stage] for sample in samples if stage in sample]
        if offsets:
            figures = percentiles(offsets)
            stages[stage] = {"what": what, "p50": figures["p50"], "p95": figures["p95"]}
    latency = [sample["lk_job_dispatch_latency"] for sample in samples if "lk_job_dispatch_latency" in sample]
    result: dict[str, Any] = {"after_connect_s": stages}
    if latency:
        result["lk_job_dispatch_latency_s"] = percentiles(latency)
    return result


def measure(mode: str, joins: int, work_dir: Path) -> dict[str, Any]:
    from local.e2e.world import World, WorldOptions, eventually

    warm = mode in ("warm", "early")
    settings = REUSED_WORKER | ({"WARM_TASKS": str(WARM_TASKS)} if warm else {})
    latencies: list[float] = []
    process_starts: list[float] = []
    instants: list[tuple[str, float, float, float]] = []  # room; connecting, connected, seen (unix s)
    with World(
        WorldOptions(work_dir=work_dir / mode, settings=settings, sweep_interval_seconds=10.0)
    ) as world:
        api_url = world.stack.stack.api_url if world.stack.stack else ""
        for index in range(joins):
            room = f"{mode}-{index}"
            if warm:
                eventually("a ready worker with a free slot", world.ready_workers, JOIN_TIMEOUT, every=0.05)
                time.sleep(WORKER_SETTLE_SECONDS)
            if mode == "early":
                answer = _post(f"{api_url}rooms/{room}/join", {"identity": "alice"})
                human = world.human_with(room, "alice", answer["token"])
            else:
                world.create_room(room)
                launched_before = set(world.worker_pids())
                human = world.human(room, "alice")
            eventually(f"the agent in {room}", human.agents, JOIN_TIMEOUT, every=0.01)
            latency = human.agent_latency
            assert latency is not None and human.connected_at is not None and human.connecting_at is not None
            latencies.append(latency)
            wall = time.time() - time.monotonic()
            connected = human.connected_at + wall
            instants.append((room, human.connecting_at + wall, connected, connected + latency))
            if mode == "cold":
                process_starts.append(_process_start(world, launched_before))
            world.leave(human)
            world.delete_room(room)  # LiveKit's room_finished ends the agent at once
            eventually(f"{room} closed", lambda room=room: world.room_state(room) == "closed", JOIN_TIMEOUT)
            progress = f"  {mode} {index + 1}/{joins}: agent visible {latency:.3f}s after connecting"
            print(progress, file=sys.__stdout__, flush=True)  # the stack's functions own sys.stdout
        stack_dir = work_dir / mode / "stack"
        samples = []
        for room, connecting, connected, seen in instants:
            times = stage_times(stack_dir, room) | {"human_connecting": connecting, "seen": seen}
            dispatch_latency = times.pop("lk_job_dispatch_latency", None)
            sample = {stage: at - connected for stage, at in times.items()}
            if dispatch_latency is not None:
                sample["lk_job_dispatch_latency"] = dispatch_latency
            samples.append(sample)
    row: dict[str, Any] = {
        "agent_visible_after_connect_s": percentiles(latencies),
        "stages": breakdown(samples),
    }
    if process_starts:
        row["worker_process_start_s"] = percentiles(process_starts)
    if mode in GOALS:
        row["goal_p99_s"] = GOALS[mode]
        row["met"] = row["agent_visible_after_connect_s"]["p99"] <= GOALS[mode]
    # Latency on 2 shared cores depends on what else runs: each row says when and at what load.
    row["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    row["load_average_1m"] = round(os.getloadavg()[0], 2)
    return row


def _process_start(world: Any, before: set[str]) -> float:
    """Seconds from the room's task launch to its worker's ready record (``launched_at`` and the
    first READY heartbeat, both written by the stack's clock)."""
    for worker in world._store().live_workers():
        if worker.task_arn not in before and worker.launched_at is not None:
            return float(worker.heartbeat_at - worker.launched_at)
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=FULL_JOINS, help="joins per row (30 for the record)")
    parser.add_argument(
        "--modes", default="warm,early,cold", help="rows to measure, comma-separated (the others are kept)"
    )
    arguments = parser.parse_args()
    if NODE_IP_ENV not in os.environ:  # outside the namespace: make it, run this again inside
        return in_namespace(["--", sys.executable, __file__, *sys.argv[1:]])
    name = "e2e_latency.json" if arguments.joins >= FULL_JOINS else "e2e_latency_smoke.json"
    out = ROOT / "bench" / "results" / name
    # Rows not measured this time are kept from the last run (each carries its own date and load).
    rows: dict[str, Any] = json.loads(out.read_text())["rows"] if out.is_file() else {}
    logs = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    for mode in arguments.modes.split(","):
        rows[mode] = measure(mode, arguments.joins, logs)
    result = {
        "joins_per_row": arguments.joins,
        "rows": rows,
        "livekit_cloud_documented_dispatch_s": LIVEKIT_CLOUD_DISPATCH,
        "server": "livekit-server " + os.environ.get("LIVEKIT_SERVER", "?"),
    }
    print(f"{'row':<7} {'p50':>7} {'p95':>7} {'p99':>7}  goal p99   (LiveKit Cloud dispatch < 150 ms)")
    for mode, row in rows.items():
        figures = row["agent_visible_after_connect_s"]
        goal = (
            f"<= {row['goal_p99_s']:.1f} s {'met' if row['met'] else 'MISSED'}"
            if "goal_p99_s" in row
            else "-"
        )
        print(f"{mode:<7} {figures['p50']:>6.3f}s {figures['p95']:>6.3f}s {figures['p99']:>6.3f}s  {goal}")
        stages = row["stages"]["after_connect_s"]
        print("        " + "  ".join(f"{stage} {figures['p50']:+.2f}" for stage, figures in stages.items()))
        if "lk_job_dispatch_latency_s" in row["stages"]:
            own = row["stages"]["lk_job_dispatch_latency_s"]
            print(f"        lk.job.dispatch_latency p50 {own['p50']:.3f}s p95 {own['p95']:.3f}s")
        if "worker_process_start_s" in row:
            start = row["worker_process_start_s"]
            figures = "".join(f" {start[p]:>6.3f}s" for p in ("p50", "p95", "p99"))
            print(f"{'  start':<7}{figures}  (worker process start, apart)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}; timelines and logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
