"""Each policy does what its description says, on small hand-written traces.

Cold starts are a fixed 45 s, webhooks arrive 0.1 s after the event, rooms close 70 s after
their last human (20 s where said), and an agent is in the room LiveKit's job assignment
(0.15 s) after its dispatch, so every moment below can be worked out by hand.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim import traces
from sim.ledger import Ledger
from sim.policies.always_on import AlwaysOnPolicy, peak_open_rooms
from sim.run import simulate
from sim.traces import ColdStart, Crash, Session, Trace
from sim.world import World

COLD = ColdStart(median_s=45.0, p99_s=45.0)


def one_room(*presences: tuple[str, float, float], departure_timeout: int = 70) -> Session:
    return traces.session("room-a", presences, departure_timeout=departure_timeout, identity="alice")


def trace_of(*sessions: Session, crashes: tuple[Crash, ...] = ()) -> Trace:
    return traces.hand_trace(sessions, crashes=crashes, cold_start=COLD)


def without_delivery(s: Session, event: str, sid: str | None = None) -> Session:
    """The session with one webhook never delivered (LiveKit lost it)."""
    hooks = tuple(
        replace(w, deliveries=()) if w.event == event and (sid is None or w.sid == sid) else w
        for w in s.webhooks
    )
    return replace(s, webhooks=hooks)


def twice(s: Session, event: str) -> Session:
    """The session with one webhook delivered a second time 0.2 s after the first."""
    hooks = tuple(
        replace(w, deliveries=(*w.deliveries, w.deliveries[0] + 0.2)) if w.event == event else w
        for w in s.webhooks
    )
    return replace(s, webhooks=hooks)


def lives(ledger: Ledger) -> list[tuple[float, float | None]]:
    return sorted(
        (round(t.launched_at, 1), t.ended_at and round(t.ended_at, 1)) for t in ledger.tasks.values()
    )


def jobs(ledger: Ledger) -> list[tuple[float, float | None]]:
    return sorted((round(j.start, 2), j.end and round(j.end, 2)) for j in ledger.jobs)


def run(trace: Trace, policy: str) -> World:
    world, _ = simulate(trace, policy)
    return world


# --- default: the real core -------------------------------------------------------------------


def test_default_starts_on_the_join_and_leaves_when_the_grace_period_ends() -> None:
    ledger = run(trace_of(one_room(("PA_1", 10.0, 610.0))), "default").ledger
    # RunTask on the join webhook (10.1); ready 45 s later; the dispatch follows the ready message.
    # The leave webhook (610.1) starts 60 s of grace; its timer removes the agent at 670.1.
    assert lives(ledger) == [(10.1, 670.1)]
    assert jobs(ledger) == [(55.25, 670.1)]
    assert ledger.failed_launches == 0 and not ledger.errors


def test_default_keeps_the_same_agent_for_a_rejoin_inside_the_grace_period() -> None:
    ledger = run(trace_of(one_room(("PA_1", 10.0, 300.0), ("PA_2", 330.0, 600.0))), "default").ledger
    assert lives(ledger) == [(10.1, 660.1)]


def test_default_starts_a_new_agent_for_a_rejoin_after_the_grace_period() -> None:
    ledger = run(trace_of(one_room(("PA_1", 10.0, 300.0), ("PA_2", 365.0, 600.0))), "default").ledger
    assert lives(ledger) == [(10.1, 360.1), (365.1, 660.1)]


def test_default_ignores_a_duplicate_join_webhook() -> None:
    ledger = run(trace_of(twice(one_room(("PA_1", 10.0, 610.0)), "participant_joined")), "default").ledger
    assert lives(ledger) == [(10.1, 670.1)]


def test_default_heals_a_lost_first_join_at_the_next_sweep() -> None:
    s = without_delivery(one_room(("PA_1", 10.0, 610.0)), "participant_joined")
    ledger = run(trace_of(s), "default").ledger
    # The sweep at 30 s finds the human LiveKit lists and adopts the room: launch at 30.
    assert lives(ledger) == [(30.0, 670.1)]


def test_default_replaces_a_crashed_agent_after_the_backoff() -> None:
    trace = trace_of(one_room(("PA_1", 10.0, 900.0)), crashes=(Crash("room-a", 200.0),))
    ledger = run(trace, "default").ledger
    first, second = lives(ledger)
    assert first == (10.1, 200.0)
    # The STOPPED event (2 s later) counts a crash: relaunch after a 10 s backoff.
    assert second[0] == pytest.approx(212.0, abs=1.0) and second[1] == 960.1


# --- ttl_sweep -----------------------------------------------------------------------------------


def test_ttl_sweep_removes_the_agent_at_the_first_pass_300_s_after_the_last_activity() -> None:
    ledger = run(trace_of(one_room(("PA_1", 10.0, 610.0))), "ttl_sweep").ledger
    # Passes run at 30, 90, …; the leave webhook at 610.1 is the last activity: 930 is the first
    # pass 300 s later. LiveKit closed the room (and ended the job) at 680.
    assert lives(ledger) == [(10.1, 930.0)]
    assert jobs(ledger) == [(55.25, 680.0)]


def test_ttl_sweep_launches_twice_when_two_joins_race() -> None:
    s = one_room(("PA_1", 10.0, 610.0), ("PA_2", 10.3, 610.0))
    ledger = run(trace_of(s), "ttl_sweep").ledger
    assert lives(ledger) == [(10.1, 930.0), (10.4, 930.0)]


# --- self_terminating ------------------------------------------------------------------------------


def test_self_terminating_agent_leaves_60_s_after_the_room_empties() -> None:
    ledger = run(trace_of(one_room(("PA_1", 10.0, 610.0))), "self_terminating").ledger
    assert lives(ledger) == [(10.1, 670.0)]


def test_self_terminating_notices_a_crash_only_when_the_heartbeat_is_5_minutes_old() -> None:
    trace = trace_of(one_room(("PA_1", 10.0, 1200.0)), crashes=(Crash("room-a", 200.0),))
    ledger = run(trace, "self_terminating").ledger
    # Heartbeats at 55.1, 115.1, 175.1; checks at 30, 90, …: 510 is the first with the last beat
    # 300 s old, and the launcher starts another agent then.
    assert lives(ledger) == [(10.1, 200.0), (510.0, 1260.0)]


# --- manager_gc ----------------------------------------------------------------------------------


def test_manager_gc_removes_the_agent_after_its_grace_timer() -> None:
    ledger = run(trace_of(one_room(("PA_1", 10.0, 610.0))), "manager_gc").ledger
    assert lives(ledger) == [(10.1, 670.1)]


def test_manager_gc_keeps_the_agent_of_a_lost_leave_until_the_room_finishes() -> None:
    s = without_delivery(one_room(("PA_1", 10.0, 610.0)), "participant_left")
    ledger = run(trace_of(s), "manager_gc").ledger
    assert lives(ledger) == [(10.1, 680.1)]  # room_finished, 70 s after the human left


def test_manager_gc_never_starts_an_agent_for_a_lost_join() -> None:
    s = without_delivery(one_room(("PA_1", 10.0, 610.0)), "participant_joined")
    world = run(trace_of(s), "manager_gc")
    assert lives(world.ledger) == []


# --- always_on -----------------------------------------------------------------------------------


def test_always_on_serves_each_session_from_a_warm_fleet_sized_for_the_peak() -> None:
    s1 = one_room(("PA_1", 10.0, 610.0))
    s2 = replace(traces.session("room-b", [("PA_2", 100.0, 200.0)], identity="bob"))
    trace = trace_of(s1, s2)
    assert peak_open_rooms(trace) == 2
    world, result = simulate(trace, AlwaysOnPolicy())
    assert len(world.ledger.tasks) == 2 and world.ledger.task_starts == 0
    # Automatic dispatch when each room opens; the job lasts until LiveKit closes the room.
    assert jobs(world.ledger) == [(9.65, 680.0), (99.65, 270.0)]
    assert result.figures["wait_p99_s"] == 0.0


def test_always_on_replaces_a_crashed_worker_but_its_room_loses_the_agent() -> None:
    trace = trace_of(one_room(("PA_1", 10.0, 610.0)), crashes=(Crash("room-a", 200.0),))
    world, _ = simulate(trace, AlwaysOnPolicy())
    assert world.ledger.task_starts == 1  # the service's replacement, launched on the STOPPED event
    # LiveKit restarts the failed job 5 s later, but the fleet's one worker is the one that died
    # and the replacement is still starting: nobody takes the job, and the room stays without.
    assert jobs(world.ledger) == [(9.65, 200.0)]
