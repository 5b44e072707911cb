"""LiveKit API calls per healthy session (issue 20 point 2): LiveKit Cloud allows 1,000 server
API requests a minute by default, so every call a session makes divides the rooms a project can
hold. A first dispatch claim creates without listing; a claim taken over lists first, and so
does the agent's removal (a dispatch whose delete failed may run unrecorded)."""

from __future__ import annotations

from collections import Counter

import pytest

from control_plane.ports import LiveKitUnavailable
from tests.harness import POLICY, TwinStack
from tests.reliability.faults import Fault, TwinFaults
from tests.unit.test_join_reservation import reserve


def session(stack: TwinStack, *, join_api: bool) -> Counter[str]:
    """One healthy session: (the join API's token,) the human joins, the agent runs its job, the
    human leaves after two minutes and the grace ends. LiveKit's calls, as the twin counted them."""
    if join_api:
        reserve(stack)
    else:
        stack.join("PA_1")
    task = stack.worker_becomes_ready()
    stack.job_started("room-1", task)
    if join_api:
        stack.join("PA_1")
    stack.advance(120)
    stack.leave("PA_1")
    stack.advance(POLICY.grace_seconds + 5)
    calls = Counter(stack.livekit.calls)  # before the checks: listing the dispatches is a call
    assert stack.room().closed_at is not None and stack.dispatches() == []
    return calls


def test_a_webhook_session_costs_one_create_one_delete_and_the_listing_before_it() -> None:
    calls = session(TwinStack(), join_api=False)

    assert calls == Counter(create_dispatch=1, list_dispatches=1, delete_dispatch=1)


def test_a_join_api_session_adds_only_its_create_room() -> None:
    calls = session(TwinStack(), join_api=True)

    assert calls == Counter(create_room=1, create_dispatch=1, list_dispatches=1, delete_dispatch=1)


def test_a_create_whose_reply_was_lost_is_found_by_the_retry_not_made_twice() -> None:
    stack = TwinStack()
    faults = TwinFaults(stack)
    faults.arm(
        Fault("livekit", "create_dispatch", lambda: LiveKitUnavailable("timeout (injected)"), after=True)
    )
    stack.join("PA_1")

    with pytest.raises(LiveKitUnavailable):  # the timer message fails and is redelivered
        stack.worker_becomes_ready()
    stack.controller.reconcile("room-1")

    calls = Counter(stack.livekit.calls)
    [dispatch] = stack.dispatches()
    assert stack.room().agent is not None and stack.room().agent.dispatch_id == dispatch.dispatch_id
    assert calls["create_dispatch"] == 1, "the retry listed and kept LiveKit's dispatch"
    assert calls["list_dispatches"] == 1


def test_an_agent_removed_with_its_create_unrecorded_has_every_dispatch_of_ours_deleted() -> None:
    stack = TwinStack()
    faults = TwinFaults(stack)
    faults.arm(
        Fault("livekit", "create_dispatch", lambda: LiveKitUnavailable("timeout (injected)"), after=True)
    )
    stack.join("PA_1")
    with pytest.raises(LiveKitUnavailable):
        stack.worker_becomes_ready()
    assert stack.room().agent is not None and stack.room().agent.dispatch_id is None
    assert len(stack.livekit.list_dispatches("room-1")) == 1, "LiveKit made the dispatch the record lacks"
    listed = stack.livekit.calls["list_dispatches"]

    stack.leave("PA_1")
    stack.advance(POLICY.grace_seconds + 5)

    assert stack.livekit.calls["list_dispatches"] == listed + 1, (
        "listed once, to find the unrecorded dispatch"
    )
    assert stack.dispatches() == []
