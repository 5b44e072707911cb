"""The report's figures add up, on runs small enough to check by hand."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sim import capacity, report, traces
from sim.cli import main
from sim.ledger import JobLife, Ledger, TaskLife
from sim.report import Union, measure, merge, overlap_seconds, percentile
from sim.run import simulate
from sim.traces import ColdStart
from sim.world import LIVEKIT_JOB_ASSIGNMENT_S, WorkerBehaviour

COLD = ColdStart(median_s=45.0, p99_s=45.0)
TASK_DOLLARS_PER_SECOND = (report.FARGATE_VCPU_HOUR_USD + 2 * report.FARGATE_GB_HOUR_USD) / 3600


def test_interval_helpers() -> None:
    assert merge([(5, 7), (0, 2), (1, 3), (9, 9)]) == [(0, 3), (5, 7)]
    union = Union([(0, 10), (20, 30)])
    assert union.covered(5, 25) == 10
    assert union.next_cover(12) == 20 and union.next_cover(3) == 3 and union.next_cover(31) is None
    assert union.gaps_within(-5, 35) == [(-5, 0), (10, 20), (30, 35)]
    assert overlap_seconds([(0, 10), (5, 15), (6, 8)]) == 5 + 2
    assert percentile([3, 1, 2, 4], 0.5) == 2 and percentile([], 0.99) == 0


def test_one_room_under_the_default_policy_adds_up() -> None:
    trace = traces.hand_trace([traces.session("room-a", [("PA_1", 10.0, 610.0)])], cold_start=COLD)
    _, result = simulate(trace, "default")
    f = result.figures
    # One task from 10.1 to 670.1, ready at 55.1; the human is there from 10 to 610; the agent is
    # in the room from 55.25 (LiveKit's 0.15 s job assignment after the dispatch at 55.1).
    assert f["agent_seconds"] == 660.0
    assert f["starting_task_seconds"] == pytest.approx(45.0)
    assert f["idle_agent_seconds"] == pytest.approx(60.25, abs=0.06)  # 55.1 → 55.25, 610 → 670.1
    assert f["floor_idle_seconds"] == 60.0  # one departure, 60 s of grace
    assert f["idle_agent_seconds_beyond_grace"] == pytest.approx(0.25, abs=0.06)
    assert f["wait_p50_s"] == pytest.approx(45.25, abs=0.06)  # joined at 10, the agent's job from 55.25
    assert f["human_seconds_waiting"] == pytest.approx(45.25, abs=0.06)
    # The control plane's part: the join webhook at 10.1 to the dispatch at 55.1 (the cold start).
    assert f["dispatch_wait_p50_s"] == pytest.approx(45.0)
    assert f["agent_wait_p50_s"] == pytest.approx(45.15)
    assert f["sessions_with_join_webhook"] == 1 and f["sessions_below_capacity"] == 0
    assert f["duplicate_agent_seconds"] == 0 and f["rooms_with_two_agents"] == 0
    assert f["rooms_without_agent"] == 0 and f["task_starts"] == 1
    assert f["room_hours"] == round(600 / 3600, 2)
    fargate = 660.0 * TASK_DOLLARS_PER_SECOND
    assert f["cost_usd"]["fargate_agents"] == pytest.approx(fargate, abs=1e-4)
    total = sum(v for k, v in f["cost_usd"].items() if k != "total")
    assert f["cost_usd"]["total"] == pytest.approx(total, abs=1e-3)
    assert f["cost_per_1000_room_hours_usd"] == pytest.approx(
        f["cost_usd"]["total"] / (600 / 3600) * 1000, rel=1e-2
    )


def test_agent_seconds_is_the_sum_of_task_lives_on_a_generated_day() -> None:
    trace = traces.generate(2, rooms=60)
    world, result = simulate(trace, "ttl_sweep")
    lives = sum(
        (t.ended_at if t.ended_at is not None else world.ledger.end) - t.launched_at
        for t in world.ledger.tasks.values()
    )
    assert result.figures["agent_seconds"] == pytest.approx(lives, abs=0.1)
    assert result.figures["idle_agent_seconds"] <= result.figures["agent_seconds"]
    beyond = result.figures["idle_agent_seconds_beyond_grace"]
    assert 0 <= beyond <= result.figures["idle_agent_seconds"]


def test_two_agents_in_one_room_count_as_duplicate_seconds_and_a_stranded_human_as_a_room_without() -> None:
    trace = traces.hand_trace(
        [
            traces.session("room-a", [("PA_1", 0.0, 1000.0)]),
            traces.session("room-b", [("PA_2", 0.0, 700.0)]),
        ]
    )
    ledger = Ledger(end=1070.0)
    ledger.tasks["t1"] = TaskLife("t1", "room-a", 0.0, ready_at=40.0, ended_at=1060.0)
    ledger.tasks["t2"] = TaskLife("t2", "room-a", 100.0, ready_at=140.0, ended_at=400.0)
    ledger.jobs.append(JobLife("room-a", "t1", 40.0, 1060.0))
    figures = measure("hand", trace, ledger, WorkerBehaviour()).figures
    assert figures["duplicate_agent_seconds"] == 300.0  # t2 alongside t1 from 100 to 400
    assert figures["rooms_with_two_agents"] == 1
    assert figures["agent_seconds"] == 1060.0 + 300.0
    # room-b's human waited all 700 s without an agent: stranded (≥ 600 s).
    assert figures["rooms_without_agent"] == 1
    assert figures["sessions_never_served"] == 1
    assert figures["human_seconds_without_agent"] == 40.0 + 700.0


def test_the_command_writes_the_json_the_issue_asks_for_and_the_charts(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(
        ["--rooms", "40", "--storm-rooms", "30", "--out", str(tmp_path), "--jobs", "1", "--quiet"],
        out,
        io.StringIO(),
    )
    assert code == 0
    doc = json.loads((tmp_path / "policies.json").read_text())
    assert doc["version"] == 2 and doc["trace"]["seed"] == 7 and doc["trace"]["rooms"] == 40
    assert set(doc["policies"]) == {
        "default",
        "warm_1",
        "warm_2",
        "adaptive",
        "ttl_sweep",
        "self_terminating",
        "manager_gc",
        "always_on",
    }
    assert doc["livekit_job_assignment_s"] == LIVEKIT_JOB_ASSIGNMENT_S
    keys = {
        "agent_seconds",
        "idle_agent_seconds_beyond_grace",
        "floor_idle_seconds",
        "duplicate_agent_seconds",
        "rooms_without_agent",
        "wait_p50_s",
        "wait_p99_s",
        "task_starts",
        "failed_launches",
        "cost_per_1000_room_hours_usd",
        "storm",
        "idle_agent_seconds",
        "wait_p95_s",
        "dispatch_wait_p50_s",
        "dispatch_wait_p95_s",
        "dispatch_wait_p99_s",
        "agent_wait_p50_s",
        "agent_wait_p95_s",
        "agent_wait_p99_s",
        "dispatch_within_1s_below_capacity",
    }
    for figures in doc["policies"].values():
        assert keys <= set(figures)
        storm_keys = {
            "failed_launches",
            "wait_p50_s",
            "wait_p99_s",
            "dispatch_wait_max_s",
            "dispatch_bound_s",
        }
        assert storm_keys <= set(figures["storm"])
    assert doc["storm_trace"]["rooms"] == 30
    for chart in ("cost-vs-wait", "agents-over-time", "storm-waits"):
        assert (tmp_path / f"policies-{chart}.png").stat().st_size > 10_000
    assert "default" in out.getvalue() and "Goals" in out.getvalue()


def test_the_capacity_model_scales_the_days_counts_per_concurrent_room(tmp_path: Path) -> None:
    path = traces.write(traces.generate(5, rooms=40), tmp_path / "day.jsonl")
    argv = ["--trace", str(path), "--storm-rooms", "0", "--policies", "default", "--out", str(tmp_path)]
    code = main([*argv, "--jobs", "1", "--quiet", "--no-charts"], io.StringIO(), io.StringIO())
    assert code == 0
    doc = json.loads((tmp_path / "policies.json").read_text())
    assert doc["storm_trace"] is None and list(doc["policies"]) == ["default"]
    policy = doc["policies"]["default"]
    rows = {row.resource: row for row in capacity.limits(policy)}
    room_seconds = policy["room_hours"] * 3600
    launches = rows["Fargate task launches"]
    assert launches.per_room == pytest.approx(policy["task_starts"] / room_seconds)
    assert launches.demand(100_000) == pytest.approx(100_000 * launches.per_room)
    assert launches.rooms_at_limit == pytest.approx(20.0 / launches.per_room)
    assert "| Fargate task launches |" in capacity.table(list(rows.values()), 100_000)


def test_the_capacity_model_without_results_says_to_run_the_simulator_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        capacity.main(["--results", str(tmp_path / "policies.json")])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "does not exist: run `make simulate` first" in err and "Traceback" not in err


REFERENCE_CHARTS = ("cost-vs-wait", "agents-over-time", "storm-waits")


def test_charts_go_where_asked(tmp_path: Path) -> None:
    argv = [
        "--rooms",
        "20",
        "--storm-rooms",
        "10",
        "--policies",
        "default,always_on",
        "--jobs",
        "1",
        "--quiet",
    ]
    code = main(
        [*argv, "--out", str(tmp_path / "out"), "--charts", str(tmp_path / "charts")],
        io.StringIO(),
        io.StringIO(),
    )

    assert code == 0
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(
        f"policies-{chart}.png" for chart in REFERENCE_CHARTS
    )
    assert not list((tmp_path / "out").glob("*.png"))


def test_the_reference_charts_are_committed_and_shown_where_people_read() -> None:
    """make simulate redraws them in docs/charts/ (issue 21): a reader of the repository's pages
    sees the seeded reference run without running anything."""
    root = Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    capacity_doc = (root / "docs" / "capacity.md").read_text(encoding="utf-8")

    assert "-m sim --charts docs/charts" in makefile
    for chart in REFERENCE_CHARTS:
        png = root / "docs" / "charts" / f"policies-{chart}.png"
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
        assert f"](docs/charts/policies-{chart}.png)" in readme
        assert f"](charts/policies-{chart}.png)" in capacity_doc
