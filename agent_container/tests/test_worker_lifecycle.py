"""When the worker drains and exits, walked on a virtual clock."""

from __future__ import annotations

from fakes import VirtualClock

from agent_worker.lifecycle import RECYCLED, Drain, Exit, Serve, WorkerLifecycle

UNREACHABLE_LIMIT = 300.0
DRAIN_TIMEOUT = 90.0


def connected_worker() -> tuple[WorkerLifecycle, VirtualClock]:
    clock = VirtualClock()
    lifecycle = WorkerLifecycle(clock=clock, unreachable_limit=UNREACHABLE_LIMIT, drain_timeout=DRAIN_TIMEOUT)
    lifecycle.livekit_connection(True)
    return lifecycle, clock


def test_a_connected_worker_keeps_serving() -> None:
    lifecycle, clock = connected_worker()
    clock.advance(24 * 3600)
    lifecycle.livekit_connection(True)

    assert lifecycle.next_step() == Serve()


def test_a_worker_that_never_reaches_livekit_exits_1_after_five_minutes() -> None:
    clock = VirtualClock()
    lifecycle = WorkerLifecycle(clock=clock, unreachable_limit=UNREACHABLE_LIMIT, drain_timeout=DRAIN_TIMEOUT)
    clock.advance(UNREACHABLE_LIMIT - 1)
    lifecycle.livekit_connection(False)
    assert lifecycle.next_step() == Serve()

    clock.advance(1)

    assert lifecycle.next_step() == Exit(1, "LiveKit unreachable for 300s")


def test_the_unreachable_time_counts_from_the_loss_and_resets_on_reconnection() -> None:
    lifecycle, clock = connected_worker()
    clock.advance(1000)
    lifecycle.livekit_connection(False)
    clock.advance(UNREACHABLE_LIMIT - 10)
    lifecycle.livekit_connection(True)
    clock.advance(20)
    lifecycle.livekit_connection(False)
    clock.advance(UNREACHABLE_LIMIT - 1)
    assert lifecycle.next_step() == Serve()

    clock.advance(1)
    assert isinstance(lifecycle.next_step(), Exit)


def test_a_drain_asked_by_the_control_plane_waits_for_the_jobs_then_exits_0() -> None:
    lifecycle, clock = connected_worker()
    lifecycle.drain_requested("the control plane set draining")

    assert lifecycle.next_step() == Drain("the control plane set draining")
    clock.advance(3 * 3600)  # jobs end on their own grace timers: no deadline here
    assert lifecycle.next_step() == Serve()

    lifecycle.drain_finished()
    assert lifecycle.next_step() == Exit(0, "drained (the control plane set draining)")


def test_sigterm_drains_and_exits_0_at_the_drain_timeout_even_with_jobs_left() -> None:
    lifecycle, clock = connected_worker()
    lifecycle.terminate_requested()
    assert lifecycle.next_step() == Drain("SIGTERM")

    clock.advance(DRAIN_TIMEOUT - 1)
    assert lifecycle.next_step() == Serve()
    clock.advance(1)

    assert lifecycle.next_step() == Exit(0, "drain timed out after 90s (SIGTERM)")


def test_sigterm_during_a_requested_drain_bounds_it_without_starting_another() -> None:
    lifecycle, clock = connected_worker()
    lifecycle.drain_requested("the control plane set draining")
    assert isinstance(lifecycle.next_step(), Drain)
    clock.advance(600)
    lifecycle.terminate_requested()

    assert lifecycle.next_step() == Serve()
    clock.advance(DRAIN_TIMEOUT)
    assert lifecycle.next_step() == Exit(0, "drain timed out after 90s (SIGTERM)")


def test_a_worker_that_took_its_last_job_keeps_serving_it_then_drains_and_exits_0() -> None:
    lifecycle, clock = connected_worker()
    lifecycle.jobs_seen(spent=False, busy=False)
    assert lifecycle.next_step() == Serve()
    lifecycle.jobs_seen(spent=True, busy=True)
    clock.advance(3600)
    assert lifecycle.next_step() == Serve()

    lifecycle.jobs_seen(spent=True, busy=False)

    assert lifecycle.next_step() == Drain(RECYCLED)
    lifecycle.drain_finished()
    assert lifecycle.next_step() == Exit(0, f"drained ({RECYCLED})")


def test_a_recycle_after_a_requested_drain_keeps_the_first_reason() -> None:
    lifecycle, _ = connected_worker()
    lifecycle.drain_requested("the control plane set draining")
    assert lifecycle.next_step() == Drain("the control plane set draining")

    lifecycle.jobs_seen(spent=True, busy=False)

    assert lifecycle.next_step() == Serve(), "one drain, already under way"


def test_a_livekit_worker_that_stops_on_its_own_exits_1() -> None:
    lifecycle, _ = connected_worker()
    lifecycle.worker_failed("the LiveKit worker stopped: RuntimeError('failed to connect')")

    assert lifecycle.next_step() == Exit(1, "the LiveKit worker stopped: RuntimeError('failed to connect')")


def test_the_exit_decision_is_final() -> None:
    lifecycle, _ = connected_worker()
    lifecycle.terminate_requested()
    lifecycle.next_step()
    lifecycle.drain_finished()
    first = lifecycle.next_step()
    lifecycle.worker_failed("late failure")

    assert lifecycle.next_step() == first == Exit(0, "drained (SIGTERM)")
