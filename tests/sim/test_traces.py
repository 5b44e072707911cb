"""The trace generator: the same seed gives the same trace; its traffic and faults look as asked."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

from sim import traces
from sim.traces import ColdStart, Faults


def test_the_same_seed_gives_the_same_trace_line_for_line() -> None:
    first = list(traces.to_lines(traces.generate(11, rooms=200)))
    second = list(traces.to_lines(traces.generate(11, rooms=200)))
    assert first == second
    assert first != list(traces.to_lines(traces.generate(12, rooms=200)))


def test_a_trace_reads_back_from_its_json_lines_unchanged(tmp_path: Path) -> None:
    trace = traces.generate(3, rooms=120)
    path = traces.write(trace, tmp_path / "day.jsonl")
    assert traces.read(path) == trace
    assert path.read_text().splitlines()[0].startswith('{"kind":"trace","version":1')


def test_sessions_close_departure_timeout_after_their_last_human_and_never_overlap() -> None:
    trace = traces.generate(5, rooms=400)
    last_close: dict[str, float] = {}
    for s in sorted(trace.sessions, key=lambda s: s.opened_at):
        assert s.opened_at < min(p.join for p in s.presences)
        assert s.closed_at == round(max(p.leave for p in s.presences) + s.departure_timeout, 3)
        assert s.opened_at > last_close.get(s.room, float("-inf"))
        last_close[s.room] = s.closed_at
        for w in s.webhooks:
            assert all(at >= w.at for at in w.deliveries)
    assert len(trace.sessions) > trace.rooms  # rejoins after the room closed open new sessions
    assert {s.departure_timeout for s in trace.sessions} == {20, 70}


def test_the_day_has_refreshes_blips_reused_names_and_up_to_four_people() -> None:
    trace = traces.generate(9, rooms=1_000)
    people = [len({p.identity for p in s.presences}) for s in trace.sessions]
    assert max(people) == 4 and min(people) == 1
    connections = sum(len(s.presences) for s in trace.sessions)
    assert connections > sum(people) * 1.1  # some people reconnect with a new sid
    assert any(p.aborted for s in trace.sessions for p in s.presences)
    assert len({s.room for s in trace.sessions}) < trace.rooms  # some names are reused


def test_webhook_faults_come_at_about_the_asked_rates() -> None:
    trace = traces.generate(21, rooms=2_000)
    hooks = [w for s in trace.sessions for w in s.webhooks]
    lost = sum(1 for w in hooks if not w.deliveries) / len(hooks)
    doubled = sum(1 for w in hooks if len(w.deliveries) == 2) / len(hooks)
    assert 0.005 < lost < 0.015
    assert 0.04 < doubled < 0.06
    assert trace.crashes and {o.service for o in trace.outages} == {"livekit", "ecs_capacity"}


def test_a_clean_trace_delivers_every_webhook_once() -> None:
    trace = traces.generate(4, rooms=100, faults=Faults.none())
    assert all(len(w.deliveries) == 1 for s in trace.sessions for w in s.webhooks)
    assert not trace.crashes and not trace.outages


def test_the_storm_opens_every_room_within_its_window() -> None:
    storm = traces.storm(8, rooms=300, window_s=10.0)
    firsts = [min(p.join for p in s.presences) for s in storm.sessions if s.index == 0]
    assert len(firsts) == 300
    assert max(firsts) - min(firsts) <= 10.0


def test_cold_starts_have_the_configured_median_and_p99() -> None:
    cold = ColdStart(median_s=45.0, p99_s=90.0)
    rng = random.Random(1)
    draws = sorted(cold.sample(rng) for _ in range(20_000))
    assert abs(statistics.median(draws) - 45.0) < 1.5
    assert abs(draws[int(0.99 * len(draws))] - 90.0) < 6.0
