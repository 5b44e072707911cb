"""``lkctl sim join|leave|refresh|state|faults``: play participants in the local LiveKit simulator.

These talk to the simulator's control endpoint (``--simulator-url``, or ``LIVEKIT_SIM_URL``; by
default where ``make dev`` starts it, ``http://127.0.0.1:7880``), not to the stack's API, so they
need no AWS credentials. Identities are checked by the API's own rule before anything is sent.
The simulator's package is imported only when a ``sim`` command runs: it is a development tool,
and the rest of ``lkctl`` works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import click
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from api.models import Identity
from cli.base import Cli, command
from cli.dev import DEFAULT_SIMULATOR_PORT
from cli.errors import CliError, ExitCode
from cli.printer import duration, fields, table, when

if TYPE_CHECKING:
    from local.livekit_sim.client import SimulatorClient
    from local.livekit_sim.models import Participant

Answer = TypeVar("Answer")
LOCAL_SIMULATOR_URL = f"http://127.0.0.1:{DEFAULT_SIMULATOR_PORT}"
_IDENTITY: TypeAdapter[str] = TypeAdapter(Identity)


@dataclass(frozen=True)
class SimulatorTarget:
    url: str


def _identity(value: str) -> str:
    """The API's identity rule (``api.models.Identity``), as a one-line usage error."""
    try:
        return _IDENTITY.validate_python(value)
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise CliError(f"identity {value!r}: {reason}", ExitCode.USAGE) from error


@click.group("sim")
@click.option(
    "--simulator-url",
    envvar="LIVEKIT_SIM_URL",
    default=LOCAL_SIMULATOR_URL,
    show_default=True,
    help="The LiveKit simulator's URL (the local stack prints it as simulator_url).",
)
@click.pass_context
def sim(ctx: click.Context, simulator_url: str) -> None:
    """Join and remove participants in the local LiveKit simulator, and see what it holds."""
    ctx.obj = SimulatorTarget(simulator_url or LOCAL_SIMULATOR_URL)


def _call(action: Callable[[SimulatorClient], Answer]) -> Answer:
    """Run ``action`` against the simulator; its refusals become the CLI's errors."""
    from local.livekit_sim.client import SimulatorClient, SimulatorError

    target = click.get_current_context().find_object(SimulatorTarget)
    assert target is not None, "the sim group makes the target"
    try:
        return action(SimulatorClient(target.url))
    except ValidationError as error:  # the client's own request model refused an argument
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise CliError(f"{where}: {problem['msg']}", ExitCode.USAGE) from error
    except SimulatorError as error:
        if error.status == 0:
            raise CliError(
                f"{error.message}. Is the local stack running (`make dev`)? Its simulator_url goes "
                "in --simulator-url.",
                ExitCode.SETUP,
            ) from error
        details = "; ".join(f"{name}: {reason}" for name, reason in error.fields.items())
        raise CliError(error.message + (f": {details}" if details else "")) from error


def _people(title: str, participants: list[Participant]) -> Table:
    return table(
        title,
        ["sid", "identity", "kind", "joined"],
        [(p.sid, p.identity, p.kind, when(p.joined_at)) for p in participants],
    )


@command("join")
@click.argument("room")
@click.argument("identity")
@click.option("--kind", default="standard", show_default=True, help="standard, sip, agent, egress, ...")
@click.option("--name", default="", help="Display name.")
@click.option("--metadata", default="", help="Participant metadata (rides in the webhooks).")
def join(cli: Cli, room: str, identity: str, kind: str, name: str, metadata: str) -> None:
    """IDENTITY connects to ROOM (LiveKit opens the room if needed)."""
    from local.livekit_sim.models import ParticipantKind

    if kind not in {k.value for k in ParticipantKind}:
        raise click.BadParameter(f"one of {', '.join(k.value for k in ParticipantKind)}", param_hint="--kind")
    identity = _identity(identity)
    result = _call(lambda client: client.join(room, identity, ParticipantKind(kind), name, metadata))
    cli.printer.result(result, _people(f"joined {result.room} ({result.room_sid})", [result.participant]))


@command("leave")
@click.argument("room")
@click.argument("identity", required=False)
@click.option("--sid", help="Only this connection leaves (instead of IDENTITY).")
@click.option("--identity", "identity_option", hidden=True, help="The first spelling of IDENTITY.")
def leave(cli: Cli, room: str, identity: str | None, sid: str | None, identity_option: str | None) -> None:
    """IDENTITY disconnects from ROOM (every connection of it), or one connection by --sid."""
    if identity is not None and identity_option is not None:
        raise click.UsageError("give IDENTITY once")
    identity = identity if identity is not None else identity_option
    if (sid is None) == (identity is None):
        raise click.UsageError("give IDENTITY (every connection of it) or --sid SID (one connection)")
    if identity is not None:
        identity = _identity(identity)
    result = _call(lambda client: client.leave(room, sid=sid, identity=identity))
    cli.printer.result(result, _people(f"left {result.room}", result.left))


@command("refresh")
@click.argument("room")
@click.argument("identity")
def refresh(cli: Cli, room: str, identity: str) -> None:
    """A page refresh: IDENTITY connects to ROOM again, so its old connection leaves and a new sid joins."""
    identity = _identity(identity)
    result = _call(lambda client: client.refresh(room, identity))
    cli.printer.result(
        result,
        _people(f"joined {result.room}", [result.joined]),
        _people(f"left {result.room}", result.left),
    )


@command("state")
def state(cli: Cli) -> None:
    """Rooms, participants (with kinds), dispatches and jobs, workers, and webhook delivery."""
    found = _call(lambda client: client.state())
    now = found.now
    rooms = table(
        "rooms",
        ["room", "sid", "humans", "agents", "departure timeout", "closes"],
        [
            (
                r.name,
                r.sid,
                sum(not p.kind.is_dependent for p in r.participants),
                sum(p.kind.is_dependent for p in r.participants),
                duration(r.departure_timeout),
                when(r.closes_at, now) if r.closes_at is not None else "in use",
            )
            for r in found.rooms
        ],
    )
    participants = table(
        "participants",
        ["room", "sid", "identity", "kind", "joined"],
        [
            (r.name, p.sid, p.identity, p.kind, when(p.joined_at, now))
            for r in found.rooms
            for p in r.participants
        ],
    )
    jobs = table(
        "dispatches",
        ["room", "dispatch", "agent", "job", "status", "worker"],
        [
            (r.name, d.dispatch_id, d.agent_name, job_id, status, worker)
            for r in found.rooms
            for d in r.dispatches
            for job_id, status, worker in (
                [(j.job_id, j.status, j.worker_id) for j in d.jobs] or [("-", "no job", None)]
            )
        ],
    )
    workers = table(
        "workers",
        ["worker", "agent", "slots", "jobs"],
        [(w.worker_id, w.agent_name, w.slots, ", ".join(w.jobs) or None) for w in found.workers],
    )
    hooks = found.webhooks
    webhooks = fields(
        "webhooks",
        [
            ("url", hooks.url or "none (not sent)"),
            ("queued", hooks.queued),
            ("delivered", hooks.delivered),
            ("rejected (4xx)", hooks.rejected),
            ("dropped", hooks.dropped),
            ("lost / duplicated (faults)", f"{hooks.lost} / {hooks.duplicated}"),
        ],
    )
    cli.printer.result(found, rooms, participants, jobs, workers, webhooks)
    cli.printer.status(f"{len(found.rooms)} room(s), {len(found.workers)} worker(s)")


@command("faults")
@click.option("--duplicate", type=click.FloatRange(0, 1), help="Chance a webhook is sent twice.")
@click.option("--reorder", type=click.FloatRange(0, 1), help="Chance a webhook is held behind later ones.")
@click.option("--window", type=click.IntRange(1, 50), help="Later webhooks a held one lets pass.")
@click.option("--loss", type=click.FloatRange(0, 1), help="Chance a webhook is never sent.")
@click.option("--seed", type=int, help="Seed for the draws, to repeat a run.")
@click.option("--clear", is_flag=True, help="No faults.")
def faults(
    cli: Cli,
    duplicate: float | None,
    reorder: float | None,
    window: int | None,
    loss: float | None,
    seed: int | None,
    clear: bool,
) -> None:
    """Show the webhook faults, or change the ones given (the rest stay as they are)."""
    from local.livekit_sim.models import WebhookFaults

    changes = {
        name: value
        for name, value in (
            ("duplicate", duplicate),
            ("reorder", reorder),
            ("reorder_window", window),
            ("loss", loss),
            ("seed", seed),
        )
        if value is not None
    }

    def apply(client: SimulatorClient) -> WebhookFaults:
        if not changes and not clear:
            return client.faults()
        base = WebhookFaults() if clear else client.faults()
        return client.set_faults(WebhookFaults.model_validate(base.model_dump() | changes))

    now = _call(apply)
    cli.printer.result(
        now,
        fields(
            "webhook faults",
            [
                ("duplicate", f"{now.duplicate:g}"),
                ("reorder", f"{now.reorder:g} (window {now.reorder_window})"),
                ("loss", f"{now.loss:g}"),
                ("seed", now.seed),
            ],
        ),
    )


for _subcommand in (join, leave, refresh, state, faults):
    sim.add_command(_subcommand)
