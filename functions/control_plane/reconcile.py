"""The one decision function every trigger calls: what is the next step for this room?

Level-triggered, like a Kubernetes controller: ``decide`` looks only at the stored room,
a few observed facts (``World``) and the time, never at which event woke it. So a lost,
duplicated or reordered trigger changes nothing: the next one decides the same way.

A decision is a new room record plus side effects. The caller saves the record with a
version condition first and performs effects only if that save won, so two concurrent
Lambdas can never both launch a task or create a dispatch. Effects that must happen once
(launch, dispatch, removal) are claimed in the record with a timestamp; a claim older than
the lease with no result is taken over, because its owner died. Harmless effects (timer
messages) go out before the save, so a grace period is never left without its timer.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from control_plane.room import MAX_FAILED_JOBS, Agent, CloseReason, Grace, Room, live_reservations

LAUNCH_BACKOFF_BASE_SECONDS = 10
LAUNCH_BACKOFF_MAX_SECONDS = 300
# SQS's longest delay; a grace timer due later arrives early and is re-armed for the rest.
MAX_TIMER_DELAY_SECONDS = 900


@dataclass(frozen=True)
class Policy:
    grace_seconds: int
    agent_name: str
    claim_lease_seconds: float
    history_ttl_seconds: int
    worker_stale_seconds: float
    crash_loop_limit: int = 3
    crash_window_seconds: float = 600.0
    long_job_seconds: float = 300.0
    """A job that ran at least this long before failing does not count toward the crash loop."""


@dataclass(frozen=True)
class World:
    """Facts observed outside the record, gathered only when a decision needs them:
    ``worker_ready`` for the worker holding the room's slot, ``slot_open`` for any ready
    worker with a free slot (a room whose own task is still starting may take it)."""

    worker_ready: bool = False
    slot_open: bool = False
    own_task_taken: bool = False
    """The task launched for the room, not yet holding its slot, went to other rooms' jobs."""


@dataclass(frozen=True)
class AcquireSlot:
    """Take a free slot on a ready worker; with ``launch``, start capacity if there is none
    (``takeover``: a dead claimer may have sent RunTask for the token: look it up first)."""

    launch_token: str
    launch: bool = True
    takeover: bool = False
    first: bool = False


@dataclass(frozen=True)
class EnsureDispatch:
    """Dispatch the agent. ``takeover``: an earlier claim may have sent ``CreateDispatch``
    unrecorded (its claimer died, or the call failed after LiveKit acted): list the room's
    dispatches and keep one; a first claim creates at once (no listing, one LiveKit call)."""

    launch_token: str
    takeover: bool = False


@dataclass(frozen=True)
class RemoveAgent:
    task_arn: str | None
    dispatch_id: str | None
    slot_reserved: bool = False


@dataclass(frozen=True)
class ScheduleGraceExpiry:
    generation: int
    delay_seconds: int


Effect = AcquireSlot | EnsureDispatch | RemoveAgent | ScheduleGraceExpiry
RoomEffect = AcquireSlot | EnsureDispatch | RemoveAgent


@dataclass(frozen=True)
class Decision:
    room: Room
    effects: tuple[RoomEffect, ...]
    before_save: tuple[ScheduleGraceExpiry, ...]
    reasons: tuple[str, ...]


def launch_token(room: Room, launch_number: int) -> str:
    """Deterministic per room session and launch: ECS ``clientToken`` (≤ 64 chars) dedupes on it."""
    digest = hashlib.sha256(f"{room.name}\0{room.sid}\0{launch_number}".encode()).hexdigest()
    return f"{digest[:40]}-{launch_number}"


def needs_worker_check(room: Room) -> bool:
    """Whether ``decide`` might use the ``World`` (so the caller may skip the reads)."""
    agent = room.agent
    return (
        agent is not None
        and (agent.task_arn is not None or agent.launch_queued)
        and agent.dispatch_id is None
        and room.stop_requested_at is None
        and bool(room.humans or room.expected)
    )


def waiting_for_slot(room: Room) -> bool:
    """The room's agent has no slot yet (its own task is starting, or its launch is queued)."""
    agent = room.agent
    return agent is not None and not agent.slot_reserved and room.stop_requested_at is None


def expecting_human(room: Room, now: float) -> bool:
    """A join token was issued for this session and its reservation has not lapsed
    (:func:`control_plane.room.expect_human`): count it as presence."""
    return not room.finished and bool(live_reservations(room, now))


def _present(room: Room, now: float) -> bool:
    return bool(room.humans) or expecting_human(room, now)


def _wanted(room: Room, now: float) -> bool:
    """Humans are in the current session, or expected: an agent should be there."""
    return room.wants_agent or expecting_human(room, now)


def _backing_off(room: Room, now: float) -> bool:
    """A crash loop or a failure's backoff holds the next launch or dispatch back."""
    return room.failed_at is not None or (room.next_launch_at is not None and now < room.next_launch_at)


def _grace_deadline(room: Room, now: float, policy: Policy) -> float:
    """Grace runs from now, or from the end of the last live reservation if that is later."""
    reserved: list[float] = [] if room.finished else list(live_reservations(room, now).values())
    return max([now, *reserved]) + policy.grace_seconds


def grace_cancelled(before: Room, after: Room) -> bool:
    """The save from ``before`` to ``after`` kept the agent through a grace period that a
    human's return ended (counted as ``GraceCancelled``)."""
    return (
        before.grace is not None
        and after.grace is None
        and after.agent is not None
        and after.stop_requested_at is None
    )


def grace_expired(room: Room, now: float) -> bool:
    return room.grace is not None and not room.humans and now >= room.grace.deadline


def decide(room: Room, world: World, now: float, policy: Policy) -> Decision | None:
    if room.stop_requested_at is not None:
        return _retry_stop(room, now, policy)
    if (
        room.finished
        or (grace_expired(room, now) and not expecting_human(room, now))
        or (room.agent is None and not _present(room, now))
        or (
            room.agent is not None
            and (room.agent.room_sid != room.sid or room.agent.task_stopped_at is not None)
        )
    ):
        return _stop_or_close(room, now, policy)

    reasons: list[str] = []
    before_save: list[ScheduleGraceExpiry] = []
    updated = room
    if room.humans and room.grace is not None:
        updated = updated.model_copy(update={"grace": None, "generation": room.generation + 1})
        reasons.append("human returned during grace")
    if not room.humans and room.agent is not None:
        # Grace runs from now, or from the end of a live join reservation (which may push an
        # existing deadline later, never earlier).
        expecting = expecting_human(room, now)
        deadline = _grace_deadline(room, now, policy)
        if room.grace is None or (expecting and room.grace.deadline < deadline):
            generation = room.generation + 1
            updated = updated.model_copy(
                update={"generation": generation, "grace": Grace(generation=generation, deadline=deadline)}
            )
            delay = min(math.ceil(deadline - now), MAX_TIMER_DELAY_SECONDS)
            before_save.append(ScheduleGraceExpiry(generation, delay))
            reasons.append(
                "human expected: grace runs from the end of the join reservation"
                if expecting
                else "last human left: grace period started"
            )

    updated, effect, why = _advance_agent(updated, world, now, policy)
    if why:
        reasons.append(why)
    if updated == room:
        return _refresh_index(room, now)
    return Decision(
        room=updated.model_copy(update={"updated_at": now}),
        effects=(effect,) if effect else (),
        before_save=tuple(before_save),
        reasons=tuple(reasons),
    )


def _new_agent(room: Room, now: float, wanted_at: float | None) -> tuple[Room, str]:
    """The room with a fresh agent claimed now: the next launch number and its token."""
    number = room.launches + 1
    token = launch_token(room, number)
    fresh = Agent(launch_token=token, launch_claimed_at=now, room_sid=room.sid, wanted_at=wanted_at)
    return room.model_copy(update={"agent": fresh, "launches": number}), token


def _advance_agent(
    room: Room, world: World, now: float, policy: Policy
) -> tuple[Room, AcquireSlot | EnsureDispatch | None, str | None]:
    """One step toward an agent in the room: take a slot (launching capacity if none is free),
    take over a dead claim, take a slot that opened while the room's own task starts, dispatch."""
    agent = room.agent
    lease = policy.claim_lease_seconds
    if agent is None:
        if _backing_off(room, now):
            return room, None, None
        claimed, token = _new_agent(room, now, wanted_at=now)
        reopened = claimed.model_copy(
            update={"next_launch_at": None, "closed_at": None, "closed_reason": None, "expires_at": None}
        )
        return reopened, AcquireSlot(token, first=True), "agent wanted: taking a slot"
    if agent.task_arn is None:
        slot_now = agent.launch_queued and world.slot_open and _present(room, now)
        if now - agent.launch_claimed_at < lease and not slot_now:
            return room, None, None
        retaken = agent.model_copy(update={"launch_claimed_at": now, "launch_queued": False})
        why = "queued launch due" if agent.launch_queued else "launch claim expired"
        return (
            room.model_copy(update={"agent": retaken}),
            AcquireSlot(agent.launch_token, takeover=not agent.launch_queued),
            why,
        )
    # A failed job holds the next dispatch back like a crash holds the next launch.
    if _backing_off(room, now):
        return room, None, None
    if not agent.slot_reserved:
        if world.own_task_taken and not world.slot_open and _present(room, now):
            # LiveKit gave the room's own task to other rooms' jobs: launch anew (new token).
            relaunched, token = _new_agent(room, now, wanted_at=agent.wanted_at)
            return relaunched, AcquireSlot(token), "the room's own task went to another room: launching again"
        # The room's own task is starting; a slot that opens first (that task's or another
        # worker's) is taken at once.
        fresh_claim = agent.slot_claimed_at is not None and now - agent.slot_claimed_at < lease
        if world.slot_open and _present(room, now) and not fresh_claim:
            slot_claim = agent.model_copy(update={"slot_claimed_at": now})
            return (
                room.model_copy(update={"agent": slot_claim}),
                AcquireSlot(agent.launch_token, launch=False),
                "slot open",
            )
        return room, None, None
    # Never dispatch into a room nobody is in or about to join (grace after a dispatch was
    # lost): the agent would join an empty room and be billed for it.
    if agent.dispatch_id is None and world.worker_ready and _present(room, now):
        if agent.dispatch_claimed_at is not None and now - agent.dispatch_claimed_at < lease:
            return room, None, None
        dispatch_claim = agent.model_copy(update={"dispatch_claimed_at": now})
        takeover = agent.dispatch_claimed_at is not None
        return (
            room.model_copy(update={"agent": dispatch_claim}),
            EnsureDispatch(agent.launch_token, takeover=takeover),
            "dispatch claim expired" if takeover else "slot reserved",
        )
    return room, None, None


def _refresh_index(room: Room, now: float) -> Decision | None:
    """A settled room whose stored index attribute disagrees with it (a fast-path write put it
    there, or left it there) is rewritten, so the sweep reads only rooms that need it."""
    if room.in_attention_index == room.needs_attention:
        return None
    return Decision(
        room=room.model_copy(update={"updated_at": now}),
        effects=(),
        before_save=(),
        reasons=("attention index refreshed",),
    )


def force_stop(
    room: Room,
    now: float,
    why: str = "closed by an operator",
    reason: CloseReason = CloseReason.FORCE_CLOSED,
) -> Decision | None:
    """An operator closes the room's agent now (the API's ``close``): claim the stop as a grace
    expiry would and remove the agent. Pending join reservations go too (they would only bring
    it back); humans still in the room get a fresh agent from the next ``decide``, since the core
    never leaves humans without one. None when there is no agent or a stop is under way."""
    if room.agent is None or room.stop_requested_at is not None:
        return None
    stopping = room.model_copy(
        update={"stop_requested_at": now, "grace": None, "expected": {}, "updated_at": now}
    )
    stopping = stopping.model_copy(update={"closed_reason": _if_closing(stopping, now, reason)})
    return Decision(room=stopping, effects=(_removal(room.agent),), before_save=(), reasons=(why,))


def _stop_or_close(room: Room, now: float, policy: Policy) -> Decision | None:
    if room.agent is not None:
        why, reason = _stop_reason(room)
        stopping = room.model_copy(
            update={
                "stop_requested_at": now,
                "grace": None,
                "closed_reason": _if_closing(room, now, room.closed_reason or reason),
                "updated_at": now,
            }
        )
        return Decision(room=stopping, effects=(_removal(room.agent),), before_save=(), reasons=(why,))
    if room.closed_at is None and (room.grace is not None or room.finished or room.launches):
        return Decision(
            room=closed(room, now, policy), effects=(), before_save=(), reasons=("nothing to run",)
        )
    return _refresh_index(room, now)


def _stop_reason(room: Room) -> tuple[str, CloseReason]:
    """Why ``_stop_or_close`` removes the room's agent: the log's words and the record's reason."""
    if room.agent is not None and room.agent.room_sid != room.sid:
        return "agent belongs to an earlier session of this room", CloseReason.ROOM_FINISHED
    if room.agent is not None and room.agent.task_stopped_at is not None:
        return "agent task stopped", CloseReason.AGENT_TASK_STOPPED
    if room.finished:
        return "room finished", CloseReason.ROOM_FINISHED
    return "grace period over", CloseReason.FAILED if room.failed_at is not None else CloseReason.GRACE_ENDED


def _if_closing(room: Room, now: float, reason: CloseReason) -> CloseReason | None:
    """``reason`` if removing the agent closes the room; None if humans there get a new agent."""
    return None if _wanted(room, now) else reason


def _closing_reason(room: Room) -> CloseReason:
    """The reason the record gives once closed: the one its stop recorded, else what it shows."""
    if room.closed_reason is not None:
        return room.closed_reason
    if room.failed_at is not None:
        return CloseReason.FAILED
    if room.finished:
        return CloseReason.ROOM_FINISHED
    return CloseReason.GRACE_ENDED if room.grace is not None else CloseReason.HUMANS_LEFT


def _retry_stop(room: Room, now: float, policy: Policy) -> Decision | None:
    assert room.stop_requested_at is not None
    if now - room.stop_requested_at < policy.claim_lease_seconds:
        return None
    if room.agent is None:
        return Decision(
            room=closed(room, now, policy), effects=(), before_save=(), reasons=("stop finished",)
        )
    retried = room.model_copy(update={"stop_requested_at": now, "updated_at": now})
    return Decision(
        room=retried, effects=(_removal(room.agent),), before_save=(), reasons=("stop claim expired",)
    )


def _removal(agent: Agent) -> RemoveAgent:
    """Remove the agent's dispatches and task; a task ECS already stopped needs no StopTask."""
    task_arn = None if agent.task_stopped_at is not None else agent.task_arn
    return RemoveAgent(task_arn, agent.dispatch_id, agent.slot_reserved)


def closed(room: Room, now: float, policy: Policy) -> Room:
    """The record after the agent is gone: kept as history until DynamoDB TTL removes it.

    A failure ends with the session it belonged to; the crash history stays for the window.
    """
    return room.model_copy(
        update={
            "agent": None,
            "grace": None,
            "stop_requested_at": None,
            "failed_at": None,
            "closed_at": now,
            "closed_reason": _closing_reason(room),
            "expires_at": int(now) + policy.history_ttl_seconds,
            "updated_at": now,
        }
    )


def record_launch(room: Room, token: str, task_arn: str) -> Room | None:
    """The room with the task launched for it recorded (no slot yet: it is starting), or None if
    that launch is no longer wanted."""
    agent = room.agent
    if agent is None or agent.launch_token != token or room.stop_requested_at is not None:
        return None
    if agent.task_arn == task_arn or agent.slot_reserved:
        return room
    return room.model_copy(
        update={"agent": agent.model_copy(update={"task_arn": task_arn}), "launch_failures": 0}
    )


def holds_slot_on(room: Room | None, task_arn: str) -> bool:
    """Whether the room's record points at a slot on ``task_arn`` (a reservation the record
    does not point back to was orphaned: the write recording it failed)."""
    agent = room.agent if room is not None else None
    return agent is not None and agent.slot_reserved and agent.task_arn == task_arn


def record_slot(room: Room, token: str, task_arn: str) -> Room | None:
    """The room holds a slot on ``task_arn``; None if the agent moved on (release the slot)."""
    agent = room.agent
    if agent is None or agent.launch_token != token or room.stop_requested_at is not None:
        return None
    if agent.slot_reserved:
        return room if agent.task_arn == task_arn else None
    held = agent.model_copy(
        update={"task_arn": task_arn, "slot_reserved": True, "slot_claimed_at": None, "launch_queued": False}
    )
    return room.model_copy(update={"agent": held, "launch_failures": 0})


def record_no_slot(room: Room, token: str) -> Room | None:
    """A slot attempt found none free (the room keeps waiting on its own task): release the
    claim so the next opening wakes it at once."""
    agent = room.agent
    if agent is None or agent.launch_token != token or agent.slot_reserved or agent.slot_claimed_at is None:
        return None
    return room.model_copy(update={"agent": agent.model_copy(update={"slot_claimed_at": None})})


def record_launch_queued(room: Room, token: str, retry_at: float, policy: Policy) -> Room | None:
    """No slot free and the launch held back (launch limiter, ``MAX_TASKS``): keep the token,
    its claim expiring at ``retry_at``; a slot that opens earlier wakes the room sooner."""
    agent = room.agent
    if agent is None or agent.launch_token != token or agent.task_arn is not None:
        return None
    queued = agent.model_copy(
        update={"launch_claimed_at": retry_at - policy.claim_lease_seconds, "launch_queued": True}
    )
    return room.model_copy(update={"agent": queued})


def record_slot_moved(room: Room, from_task: str, to_task: str) -> Room | None:
    """The room's slot moved to ``to_task`` (another room's job took the worker it was on);
    None if the room no longer holds an unstarted slot on ``from_task``."""
    agent = room.agent
    if (
        agent is None
        or not agent.slot_reserved
        or agent.task_arn != from_task
        or agent.job_id is not None
        or room.stop_requested_at is not None
    ):
        return None
    return room.model_copy(update={"agent": agent.model_copy(update={"task_arn": to_task})})


def record_job_started(room: Room, task_arn: str, room_sid: str, job_id: str) -> Room | None:
    """LiveKit gave the room's job to ``task_arn`` (maybe not the worker whose slot it
    reserved): the agent now lives there. None if the job is not this room's current agent's.
    The caller confirms a claim that changes the record with LiveKit first: the report comes
    from a task, and a task may lie about another room."""
    agent = room.agent
    if (
        agent is None
        or not agent.slot_reserved
        or room.stop_requested_at is not None
        or room_sid != agent.room_sid
    ):
        return None
    if agent.task_arn == task_arn and agent.job_id == job_id:
        return room
    return room.model_copy(
        update={"agent": agent.model_copy(update={"task_arn": task_arn, "job_id": job_id})}
    )


def launch_backoff_seconds(failures: int) -> int:
    """10 s, 20 s, 40 s … capped at 5 minutes: Fargate capacity errors are usually brief."""
    return int(min(LAUNCH_BACKOFF_BASE_SECONDS * 2 ** max(failures - 1, 0), LAUNCH_BACKOFF_MAX_SECONDS))


def record_launch_failed(room: Room, token: str, now: float) -> Room | None:
    """Drop a launch ECS refused; the next attempt (new token) waits out the backoff."""
    agent = room.agent
    if agent is None or agent.launch_token != token or agent.task_arn is not None:
        return None
    failures = room.launch_failures + 1
    return room.model_copy(
        update={
            "agent": None,
            "launch_failures": failures,
            "next_launch_at": now + launch_backoff_seconds(failures),
        }
    )


def record_dispatch(room: Room, token: str, dispatch_id: str, now: float) -> Room | None:
    agent = room.agent
    if agent is None or agent.launch_token != token or room.stop_requested_at is not None:
        return None
    if agent.dispatch_id == dispatch_id:
        return room
    return room.model_copy(
        update={"agent": agent.model_copy(update={"dispatch_id": dispatch_id, "dispatched_at": now})}
    )


def release_claim(room: Room, effect: RoomEffect) -> Room | None:
    """Expire the claim of an effect that failed, so the very next trigger retries it.

    The claim stays in place (backdated to the epoch) rather than being removed: removing a
    stop claim would turn an expired grace period back into a fresh one.
    """
    agent = room.agent
    if agent is None:
        return None
    if isinstance(effect, RemoveAgent):
        return room.model_copy(update={"stop_requested_at": 0.0}) if room.stop_requested_at else None
    if agent.launch_token != effect.launch_token:
        return None
    if isinstance(effect, AcquireSlot):
        field = "launch_claimed_at" if effect.launch else "slot_claimed_at"
        released = 0.0 if effect.launch else None
        return room.model_copy(update={"agent": agent.model_copy(update={field: released})})
    # Backdated, not removed: the failed CreateDispatch may have reached LiveKit, so the retry
    # is a takeover that lists the room's dispatches before creating one.
    return room.model_copy(update={"agent": agent.model_copy(update={"dispatch_claimed_at": 0.0})})


def defer_launch_takeover(room: Room, token: str, retry_at: float, policy: Policy) -> Room | None:
    """Keep a launch whose outcome is unknown, with its claim set to expire at ``retry_at``:
    the takeover then looks the token up before launching, and not in a tight loop."""
    agent = room.agent
    if agent is None or agent.launch_token != token or agent.task_arn is not None:
        return None
    claimed = agent.model_copy(update={"launch_claimed_at": retry_at - policy.claim_lease_seconds})
    return room.model_copy(update={"agent": claimed})


def record_removed(room: Room, now: float, policy: Policy) -> Room:
    """The agent is gone. Humans still there or expected (its task died, or it was from an
    earlier session) keep the room open, so ``decide`` launches a new agent when allowed."""
    if _wanted(room, now):
        return room.model_copy(
            update={
                "agent": None,
                "grace": None,
                "stop_requested_at": None,
                "closed_at": None,
                "closed_reason": None,
                "expires_at": None,
                "updated_at": now,
            }
        )
    return closed(room, now, policy)


def record_task_stopped(
    room: Room, task_arn: str, launch_token: str | None, crashed: bool, now: float, policy: Policy
) -> Room | None:
    """ECS stopped the agent's task without our asking; None if the room does not own it.

    The agent is marked so ``decide`` removes it (dispatches deleted) and launches anew. A
    crash while humans wait counts toward the crash loop: the next launch waits out a backoff,
    and ``crash_loop_limit`` crashes within the window mark the room failed. A worker that died
    holding the room's slot before the room's job ran there (:func:`lost_before_job`: a Spot
    reclaim, a pool worker's own fault) failed itself, not the room: nothing is counted and the
    room takes another slot at once. A stop the room requested itself, or a task already
    recorded as stopped, is not news.
    """
    agent = room.agent
    if agent is None or agent.task_stopped_at is not None or room.stop_requested_at is not None:
        return None
    owns = agent.task_arn == task_arn or (agent.task_arn is None and agent.launch_token == launch_token)
    if not owns:
        return None
    update: dict[str, object] = {
        "agent": agent.model_copy(update={"task_arn": task_arn, "task_stopped_at": now})
    }
    # A sweep that saw the task's job dead first counted this incident already.
    counted = agent.job_id is not None and agent.job_id in room.failed_jobs
    if crashed and _wanted(room, now) and not counted and not lost_before_job(agent, launch_token):
        update.update(count_failure(room, now, policy))
    return room.model_copy(update=update)


def lost_before_job(agent: Agent, task_launch_token: str | None) -> bool:
    """The worker holding the room's slot died before it reported the room's job, and it was
    not launched for this agent (a pool worker, or another room's task): its death is that
    worker's failure, not the room's. A task launched for the room is judged as the room's
    (a broken image or configuration must still end in a crash loop), and so is a task whose
    launch token is unknown."""
    return (
        agent.slot_reserved
        and agent.job_id is None
        and task_launch_token is not None
        and task_launch_token != agent.launch_token
    )


def count_failure(room: Room, now: float, policy: Policy) -> dict[str, object]:
    """The one crash-loop rule, for task crashes and job failures alike: the failure joins the
    room's ``crashes`` within the window, the next launch or dispatch waits out a backoff
    (``next_launch_at``), and ``crash_loop_limit`` of them mark the room failed."""
    recent = tuple(at for at in room.crashes if now - at < policy.crash_window_seconds)
    crashes = (*recent, now)
    update: dict[str, object] = {
        "crashes": crashes,
        "next_launch_at": now + launch_backoff_seconds(len(crashes)),
    }
    if len(crashes) >= policy.crash_loop_limit:
        update["failed_at"] = now
    return update


def record_job_failed(
    room: Room, task_arn: str, job_id: str, duration_seconds: float, now: float, policy: Policy
) -> Room | None:
    """The agent's worker reports a job in this room failed; None if it does not count.

    Counted like a crash (:func:`count_failure`) when the room's current task ran it, humans
    are there or expected, and the job failed within ``long_job_seconds`` of its start: a job
    that served the room that long was working, and its failure is not a loop. A job counted
    already (the sweep saw it dead first, or a redelivery) is not counted again, nor is a
    report while the backoff from the last failure still runs: no dispatch was made since.
    """
    agent = room.agent
    if (
        agent is None
        or agent.task_arn != task_arn
        or agent.task_stopped_at is not None
        or room.stop_requested_at is not None
        or not _wanted(room, now)
        or duration_seconds >= policy.long_job_seconds
        or _backing_off(room, now)
        or job_id in room.failed_jobs
    ):
        return None
    return room.model_copy(
        update={**count_failure(room, now, policy), "failed_jobs": _remember(room, job_id)}
    )


def record_job_lost(room: Room, dispatch_id: str, job_id: str, now: float, policy: Policy) -> Room | None:
    """The sweep found a job of the room's dispatch dead in LiveKit (``JS_FAILED``, or ended
    while humans stay) with no report from its worker (killed: OOM, a native crash, ``kill -9``).

    Counted like a reported failure (:func:`count_failure`), once per job id whoever sees it
    first, when it is the current agent's dispatch, humans are there or expected, and the job
    was dispatched within ``long_job_seconds`` (a job that served longer was working). None
    if it does not count."""
    agent = room.agent
    if (
        agent is None
        or agent.dispatch_id != dispatch_id
        or agent.task_stopped_at is not None
        or room.stop_requested_at is not None
        or not _wanted(room, now)
        or agent.dispatched_at is None
        or now - agent.dispatched_at >= policy.long_job_seconds
        or job_id in room.failed_jobs
    ):
        return None
    return room.model_copy(
        update={**count_failure(room, now, policy), "failed_jobs": _remember(room, job_id)}
    )


def _remember(room: Room, job_id: str) -> tuple[str, ...]:
    return (*room.failed_jobs, job_id)[-MAX_FAILED_JOBS:]


def record_dispatch_replaced(
    room: Room, old_dispatch_id: str, new_dispatch_id: str | None, now: float
) -> Room | None:
    """The recorded dispatch was deleted (dead or a duplicate): adopt the survivor, or forget
    it so ``decide`` dispatches again once the worker is ready. None if the record moved on."""
    agent = room.agent
    if agent is None or agent.dispatch_id != old_dispatch_id or room.stop_requested_at is not None:
        return None
    if new_dispatch_id is None:
        forgotten = agent.model_copy(
            update={"dispatch_id": None, "dispatch_claimed_at": None, "dispatched_at": None}
        )
        return room.model_copy(update={"agent": forgotten})
    return room.model_copy(
        update={"agent": agent.model_copy(update={"dispatch_id": new_dispatch_id, "dispatched_at": now})}
    )
