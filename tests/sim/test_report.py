"""The report's figures add up, on runs small enough to check by hand."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sim import capacity, prices, traces
from sim.cli import main
from sim.intervals import Union, merge, overlap_seconds, percentile
from sim.ledger import JobLife, Ledger, TaskLife
from sim.model import LIVEKIT_JOB_ASSIGNMENT_S, WorkerBehaviour
from sim.report import measure
from sim.run import simulate
from sim.traces import ColdStart

COLD = ColdStart(median_s=45.0, p99_s=45.0)
TASK_DOLLARS_PER_SECOND = (prices.FARGATE_VCPU_HOUR_USD + 2 * prices.FARGATE_GB_HOUR_USD) / 3600


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
        "pooled_4",
        "pooled_8",
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
    out = tmp_path / "capacity.json"
    argv = ["--simulated-rooms", "40", "--rows", "default,pooled_4", "--out", str(out), "--jobs", "1"]
    assert capacity.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["rooms"] == 100_000 and set(doc["rows"]) == {"default", "pooled_4"}
    for row in doc["rows"].values():
        assert set(row) == {"join_api", "webhook"}
        for path in row.values():
            limits = {limit["resource"]: limit for limit in path["limits"]}
            launches = limits["Fargate task launches"]
            assert launches["demand_at_n"] == pytest.approx(100_000 * launches["demand_per_room"])
            assert launches["rooms_at_limit"] == round(20.0 / launches["demand_per_room"])
            smallest = min(
                (limit for limit in path["limits"] if limit["rooms_at_limit"] is not None),
                key=lambda limit: limit["rooms_at_limit"],
            )
            assert path["binding"]["resource"] == smallest["resource"]
            assert path["fargate_vcpu_quota_to_request"] >= path["fargate_vcpu_for_jobs"] > 0
    # The join API creates each session's room: one CreateRoom a session, counted, not assumed.
    default = doc["rows"]["default"]
    assert default["join_api"]["livekit_calls_per_session"]["CreateRoom"] > 0.9
    assert "CreateRoom" not in default["webhook"]["livekit_calls_per_session"]
    assert doc["binding"]["rooms_at_limit"] == min(
        path["binding"]["rooms_at_limit"] for row in doc["rows"].values() for path in row.values()
    )


def test_the_capacity_model_from_its_figures_alone() -> None:
    figures = {
        "room_hours": 1.0,
        "duration_s": 3600.0,
        "sessions": 10,
        "calls": {"livekit.CreateDispatch": 10, "livekit.ListRooms": 60, "ecs.RunTask": 10},
        "lambda_invocations": {"sweeper": 60, "webhook": 40},
        "lambda_ms_per_invocation": {"sweeper": 10.0, "webhook": 50.0},
        "worker_listing_read_units": 0,
        "worker_listings": 0,
        "agent_seconds": 3600.0,
        "agent_vcpu_seconds": 3600.0,
        "task_starts": 10,
        "calls_per_room": {"dynamodb_reads": 5, "dynamodb_writes": 5, "webhook_deliveries": 4, "sqs": 3},
    }
    rows = {row.resource: row for row in capacity.limits(figures)}
    livekit = rows["LiveKit server API"]
    # 10 calls per room-hour: 1/6 a minute per room; the sweep's 60 ListRooms an hour are fixed.
    assert livekit.per_room == pytest.approx(10 / 60) and livekit.fixed == pytest.approx(1.0)
    assert livekit.rooms_at_limit == pytest.approx((1_000 - 1) / (10 / 60))
    assert "DynamoDB reads: the pool's worker listings" not in rows, "no listings, no N² term"


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
