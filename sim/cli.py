"""``python -m sim`` (``make simulate``): every policy over the reference traces, side by side.

Makes the day trace and the launch-storm trace (or reads a day trace from a file), writes them
as JSON lines, runs each policy on each in worker processes that read those files, and writes
``policies.json`` and the charts. Results go to stdout (the table, or the JSON with ``--json``);
progress and paths go to stderr, and ``--quiet`` mutes progress only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from sim import charts, report, results, tables, traces
from sim.model import LIVEKIT_JOB_ASSIGNMENT_S
from sim.policies import OUR_POLICIES, POLICIES
from sim.policies.always_on import peak_open_rooms
from sim.report import PolicyResult
from sim.run import quiet_core, simulate

DEFAULT_OUT = Path("bench/results")
DEFAULT_SEED = 7


@dataclass(frozen=True)
class Job:
    trace_path: Path
    policy: str
    storm: bool


@cache
def _trace(path: Path) -> traces.Trace:
    """Each worker process reads a trace file once."""
    return traces.read(path)


def run_job(job: Job, progress: bool) -> PolicyResult:
    quiet_core()
    trace = _trace(job.trace_path)
    label = f"{job.policy}{' (storm)' if job.storm else ''}"
    started = time.perf_counter()

    def tell(done: float, total: float) -> None:
        print(
            f"  {label}: {done / 3600:5.1f} of {total / 3600:.1f} h simulated, "
            f"{time.perf_counter() - started:5.1f} s",
            file=sys.stderr,
            flush=True,
        )

    _, result = simulate(trace, job.policy, progress=tell if progress and not job.storm else None)
    return result


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=10_000, help="rooms opening in the day trace")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="day trace seed (the storm uses seed + 1)"
    )
    parser.add_argument("--trace", type=Path, help="read the day trace from this JSON lines file instead")
    parser.add_argument("--storm-rooms", type=int, default=1_000, help="rooms in the launch storm (0: none)")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated policy names")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON, charts and traces go")
    parser.add_argument(
        "--jobs", type=int, default=min(2, multiprocessing.cpu_count()), help="worker processes"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument(
        "--charts", type=Path, help="where the PNG charts go [default: --out]; make simulate: docs/charts"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    unknown = set(args.policies.split(",")) - set(POLICIES)
    if unknown:
        parser.error(f"unknown policies: {', '.join(sorted(unknown))} (known: {', '.join(POLICIES)})")
    return args


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = parse(argv)
    stdout, stderr = out or sys.stdout, err or sys.stderr

    def status(message: str) -> None:
        if not args.quiet:
            print(message, file=stderr, flush=True)

    started = time.perf_counter()
    names = args.policies.split(",")
    day = traces.read(args.trace) if args.trace else traces.generate(args.seed, args.rooms)
    day_path = traces.write(day, args.out / "traces" / f"{day.name}-seed{day.seed}-{day.rooms}.jsonl")
    status(f"day trace: {day.rooms:,} rooms, {len(day.sessions):,} sessions -> {day_path}")
    storm = traces.storm(day.seed + 1, args.storm_rooms) if args.storm_rooms else None
    storm_path = None
    if storm is not None:
        storm_path = traces.write(storm, args.out / "traces" / f"storm-seed{storm.seed}-{storm.rooms}.jsonl")
        status(
            f"storm trace: {storm.rooms:,} rooms within {storm.traffic.arrival_window_s:g} s -> {storm_path}"
        )

    jobs = [Job(day_path, name, storm=False) for name in names]
    if storm_path is not None:
        jobs += [Job(storm_path, name, storm=True) for name in names]
    # The real core's runs are the long ones, its storms longest: started first, they end together.
    jobs.sort(key=lambda job: (job.policy not in OUR_POLICIES, not job.storm))
    finished = _run_all(jobs, args.jobs, not args.quiet, status)
    day_results = {name: finished[Job(day_path, name, False)] for name in names}
    storm_results = {name: finished[Job(storm_path, name, True)] for name in names} if storm_path else {}
    storm_figures = {name: report.storm_figures(result) for name, result in storm_results.items()}

    doc = results.document(day, storm, day_results, storm_figures, peak_open_rooms(day))
    json_path = results.write_json(doc, args.out / "policies.json")
    paths = [json_path]
    if not args.no_charts:
        where = args.charts or args.out
        paths.append(charts.cost_vs_wait(day_results, where / "policies-cost-vs-wait.png"))
        paths.append(charts.agents_over_time(day_results, where / "policies-agents-over-time.png"))
        if storm is not None and storm_results:
            window = storm.traffic.arrival_window_s or 0.0
            paths.append(charts.storm_waits(storm_results, where / "policies-storm-waits.png", window))

    if args.json:
        print(json.dumps(doc, indent=2), file=stdout)
    else:
        print(_summary(day, doc, day_results, storm_figures), file=stdout)
    for path in paths:
        print(f"wrote {path}", file=stderr)
    status(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def _run_all(
    jobs: list[Job], workers: int, progress: bool, status: Callable[[str], None]
) -> dict[Job, PolicyResult]:
    """In the given order over ``workers`` processes; inline for one."""
    results: dict[Job, PolicyResult] = {}
    if workers <= 1:
        for job in jobs:
            results[job] = run_job(job, progress)
            status(_done(job, results[job]))
        return results
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures: dict[Future[PolicyResult], Job] = {pool.submit(run_job, job, progress): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            results[job] = future.result()
            status(_done(job, results[job]))
    return results


def _done(job: Job, result: PolicyResult) -> str:
    kind = "storm" if job.storm else "day"
    f = result.figures
    return f"{kind} {job.policy}: done in {f['run_wall_s']:.1f} s ({f['run_cpu_s']:.1f} s CPU)"


def _summary(
    day: traces.Trace,
    doc: dict[str, Any],
    day_results: dict[str, PolicyResult],
    storm: dict[str, dict[str, Any]],
) -> str:
    t = doc["trace"]
    lines = [
        f"Policies over one day: {t['rooms']:,} rooms ({t['sessions']:,} sessions, seed {t['seed']},"
        f" peak {t['peak_open_rooms']} open rooms, faults: 5 % duplicate, 2 % reordered, 1 % lost webhooks,"
        f" {t['faults']['crashes']} crashes, {len(t['faults']['outages'])} outages)",
        "",
        tables.render_table([c for c, _ in tables.COLUMNS], tables.table_rows(day_results)),
    ]
    if storm:
        s = doc["storm_trace"]
        lines += [
            "",
            f"Launch storm: {s['rooms']:,} rooms within {s['window_s']:g} s (seed {s['seed']})",
            "",
            tables.render_table(tables.STORM_HEADERS, tables.storm_rows(storm)),
        ]
    lines += [
        "",
        "Waits per room session from the first human's webhook: until the dispatch exists (the control"
        f" plane), until the agent is in the room (+ LiveKit's {LIVEKIT_JOB_ASSIGNMENT_S:g} s"
        " job assignment); below cap = a slot the room could take was free then (the core's own test)",
        "",
        tables.render_table(tables.WAIT_HEADERS, tables.wait_rows(day_results)),
        "",
        "Goals (issues 9 and 10):",
    ]
    for goal in doc["goals"]:
        mark = {True: "met", False: "NOT met", None: "-"}[goal["met"]]
        lines.append(f"  [{mark}] {goal['goal']}: {goal['measured']}")
    return "\n".join(lines)
