"""``make demo``: a coaching session played against the local stack, every webhook over HTTP.

The stack runs as ``lkctl dev`` runs it (moto, the functions behind their HTTP routes, the timer
queue poller, the sweeper, agent tasks as local processes) against the LiveKit simulator, with a
short grace period. The story goes through the simulator's control endpoint, so each webhook is
one LiveKit would send: signed, over HTTP, with its delivery rules. The coach joins; the client
joins (LiveKit delivers that webhook twice); the client refreshes the page; the client leaves;
the coach leaves and is back within the grace period; everyone leaves. A sampler watches the
simulator and the tasks throughout; the summary at the end is checked, and the exit code says
whether it holds.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local.livekit_sim import SimulatorClient, WebhookFaults
from local.livekit_sim.models import ParticipantKind, SimState
from local.stack.runner import LocalRunner
from local.stack.session import DevSession
from local.stack.stack import StackOptions
from local.stack.timeline import Timeline

ROOM = "coaching"
GRACE_SECONDS = 5
SWEEP_INTERVAL_SECONDS = 10.0
SAMPLE_SECONDS = 0.1
IDLE_ALLOWANCE_SECONDS = 5.0  # the reliability invariant: no agent beyond grace + 5 s
AGENT_WAIT_SECONDS = 20.0
END_WAIT_SECONDS = 20.0  # after the grace period


@dataclass
class Tally:
    """What the sampler saw: agents in the room, humans, tasks, dispatches."""

    most_agents: int = 0
    most_tasks: int = 0
    idle_beyond_grace: float = 0.0
    first_human_at: float | None = None
    first_agent_at: float | None = None
    humans_left_at: float | None = None
    agents_now: int = 0
    humans_now: int = 0
    dispatches_now: int = 0
    tasks_now: int = 0
    duplicates_delivered: int = 0


@dataclass
class Sampler:
    """Reads the simulator (humans, agents, dispatches) and the runner (tasks) every 0.1 s."""

    simulator: SimulatorClient
    runner: LocalRunner
    grace_seconds: float
    tally: Tally = field(default_factory=Tally)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stopped.wait(SAMPLE_SECONDS):
            now = time.monotonic()
            self._sample(self.simulator.state(), len(self.runner.running()), now, now - last)
            last = now

    def _sample(self, state: SimState, tasks: int, now: float, elapsed: float) -> None:
        tally = self.tally
        room = next((r for r in state.rooms if r.name == ROOM), None)
        members = room.participants if room else []
        humans = sum(not p.kind.is_dependent for p in members)
        agents = sum(p.kind is ParticipantKind.AGENT for p in members)
        if humans and tally.first_human_at is None:
            tally.first_human_at = now
        if agents and tally.first_agent_at is None:
            tally.first_agent_at = now
        if humans:
            tally.humans_left_at = None
        elif tally.humans_left_at is None and tally.first_human_at is not None:
            tally.humans_left_at = now
        alone_too_long = tally.humans_left_at is not None and now - tally.humans_left_at > self.grace_seconds
        if alone_too_long and (agents or tasks):
            tally.idle_beyond_grace += elapsed
        tally.most_agents = max(tally.most_agents, agents)
        tally.most_tasks = max(tally.most_tasks, tasks)
        tally.agents_now, tally.humans_now, tally.tasks_now = agents, humans, tasks
        # the room's own "any agent" dispatch (empty name) is LiveKit's, not ours
        tally.dispatches_now = sum(1 for d in room.dispatches if d.agent_name) if room else 0
        tally.duplicates_delivered = state.webhooks.duplicated


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(SAMPLE_SECONDS)


def play(session: DevSession, sim: SimulatorClient, tally: Tally, grace_seconds: int) -> None:
    say = session.timeline.emit
    say("story", f"the coach joins {ROOM}")
    sim.join(ROOM, "coach")
    wait_for("the agent", lambda: tally.agents_now == 1, AGENT_WAIT_SECONDS)
    say("story", "the client joins; LiveKit delivers that webhook twice")
    sim.set_faults(WebhookFaults(duplicate=1.0))
    sim.join(ROOM, "client")
    time.sleep(0.5)
    sim.set_faults(WebhookFaults())
    say("story", "the client refreshes the page: the old connection leaves, the new one joins")
    sim.refresh(ROOM, "client")
    time.sleep(1.0)
    say("story", "the client leaves")
    sim.leave(ROOM, identity="client")
    time.sleep(1.0)
    say("story", "the coach leaves: the grace period starts")
    sim.leave(ROOM, identity="coach")
    time.sleep(grace_seconds / 2)
    say("story", "the coach is back within the grace period: the same agent stays")
    sim.join(ROOM, "coach")
    time.sleep(1.0)
    say("story", "everyone leaves")
    sim.leave(ROOM, identity="coach")
    wait_for(
        "the agent to go",
        lambda: tally.agents_now == 0 and tally.tasks_now == 0 and tally.dispatches_now == 0,
        grace_seconds + END_WAIT_SECONDS,
    )
    time.sleep(0.5)  # a late duplicate or a stale timer would show now


def summary(tally: Tally, started: int) -> tuple[list[str], bool]:
    """The summary lines and whether every figure is what it must be."""
    wait = (
        tally.first_agent_at - tally.first_human_at
        if tally.first_agent_at is not None and tally.first_human_at is not None
        else None
    )
    checks = [
        ("agents started", f"{started}", "1", started == 1),
        (
            "duplicate agents (most in the room at once, less one)",
            f"{max(0, tally.most_agents - 1)}",
            "0",
            tally.most_agents == 1,
        ),
        (
            "idle agent-seconds beyond grace",
            f"{tally.idle_beyond_grace:.1f}",
            f"<= {IDLE_ALLOWANCE_SECONDS:g}",
            tally.idle_beyond_grace <= IDLE_ALLOWANCE_SECONDS,
        ),
        ("dispatches left", f"{tally.dispatches_now}", "0", tally.dispatches_now == 0),
        ("tasks left running", f"{tally.tasks_now}", "0", tally.tasks_now == 0),
    ]
    lines = ["", "Summary"]
    for name, value, want, ok in checks:
        lines.append(f"  {name:<56} {value:>6}   want {want:<6} {'ok' if ok else 'WRONG'}")
    lines.append(
        f"  {'webhooks LiveKit sent twice (answered duplicate)':<56} {tally.duplicates_delivered:>6}"
    )
    if wait is not None:
        lines.append(f"  {'seconds from the first human to the agent in the room':<56} {wait:>6.1f}")
    return lines, all(ok for *_, ok in checks)


def main(grace_seconds: int = GRACE_SECONDS, log_dir: Path | None = None) -> int:
    out = sys.stdout  # the stack sends what its functions print elsewhere once it runs
    timeline = Timeline(out)
    options = StackOptions(
        grace_seconds=grace_seconds,
        sweep_interval_seconds=SWEEP_INTERVAL_SECONDS,
        log_dir=log_dir or Path(tempfile.mkdtemp(prefix="livekit-demo-")),
        task_stop_timeout_seconds=5.0,
    )
    out.write(f"Local stack with the LiveKit simulator; grace period {grace_seconds}s (60s by default).\n")
    with DevSession(options, timeline) as session:
        assert (
            session.simulator is not None and session.stack is not None and session.stack.runner is not None
        )
        sim = SimulatorClient(session.simulator.url)
        sampler = Sampler(sim, session.stack.runner, grace_seconds)
        sampler.start()
        try:
            play(session, sim, sampler.tally, grace_seconds)
        except TimeoutError as error:
            timeline.emit("story", f"ERROR: {error}")
        finally:
            sampler.stop()
        lines, ok = summary(sampler.tally, session.stack.runner.started())
    out.write("\n".join(lines) + f"\n\nLogs: {options.log_dir}\n")
    out.write("The summary holds.\n" if ok else "The summary is WRONG.\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
