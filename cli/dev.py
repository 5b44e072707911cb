"""``lkctl dev``: the whole control plane on this machine, until Ctrl-C.

Starts the local stack (``local/stack``): moto with the template's table and queue, the functions
behind the HTTP API's routes, the timer queue poller, the sweeper's schedule and agent tasks as
local processes, against a livekit-server of this machine (``LIVEKIT_SERVER``, ``livekit-server``
on PATH, or our cached build: started on 127.0.0.1 with the real agent worker and its keyless
pipeline), else the LiveKit simulator (``--simulator`` asks for it), or, with ``--livekit-url``,
your own LiveKit server. Prints one JSON line (where everything is), then the timeline. It runs
from a checkout of this repository (``make dev``): the functions and the stack are not part of
the installed CLI.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from cli.printer import Printer

if TYPE_CHECKING:
    from local.stack.session import DevSession

DEFAULT_PORT = 8787
DEFAULT_SIMULATOR_PORT = 7880  # where livekit-server listens, so clients find the simulator there too
LIVEKIT_DEV_KEY = "devkey"  # livekit-server --dev
LIVEKIT_DEV_SECRET = "secret"


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--set {pair!r}: write it as NAME=VALUE")
        parsed[name] = value
    return parsed


@click.command("dev")
@click.option("--grace", type=click.IntRange(0, 900), help="GRACE_PERIOD_SECONDS [default: 60].")
@click.option("--sweep-interval", type=click.FloatRange(min=1), help="Seconds between sweeps [default: 60].")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port of the HTTP API (webhook, API routes, live page); 0: any free one.",
)
@click.option(
    "--simulator-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_SIMULATOR_PORT,
    show_default=True,
    help="Port of the LiveKit simulator; 0: any free one.",
)
@click.option(
    "--livekit-url", help="Your LiveKit server (e.g. ws://localhost:7880) instead of the simulator."
)
@click.option(
    "--simulator",
    "force_simulator",
    is_flag=True,
    help="The LiveKit simulator even when a livekit-server is found on this machine.",
)
@click.option("--api-key", default=LIVEKIT_DEV_KEY, show_default=True, help="Its API key.")
@click.option("--api-secret", default=LIVEKIT_DEV_SECRET, show_default=True, help="Its API secret.")
@click.option("--aws-table", help="A deployed stack's table instead of moto's (needs --aws-queue-url).")
@click.option("--aws-queue-url", help="That stack's timer queue URL.")
@click.option("--region", "aws_region", help="Region of that table and queue [default: your AWS config].")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A setting for the functions and workers, e.g. --set WARM_TASKS=1.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the functions' JSON logs and each task's output go [default: <tmp>/livekit-local-stack].",
)
def dev(
    grace: int | None,
    sweep_interval: float | None,
    port: int,
    simulator_port: int,
    livekit_url: str | None,
    force_simulator: bool,
    api_key: str,
    api_secret: str,
    aws_table: str | None,
    aws_queue_url: str | None,
    aws_region: str | None,
    settings: tuple[str, ...],
    log_dir: Path | None,
) -> None:
    """Run the control plane locally against livekit-server, the LiveKit simulator or your own LiveKit.

    Prints a JSON line with webhook_url, api_url, simulator_url, livekit_url, livekit_api_key and
    livekit_api_secret, then what happens. The live page is at api_url. Ctrl-C stops everything.
    """
    printer = Printer()
    # livekit-server --dev signs with the 6-byte secret "secret": its warning would repeat per call.
    warnings.filterwarnings("ignore", message="The HMAC key is .* below the minimum recommended length")
    try:
        from local.livekit_server import ServerNotFound
        from local.stack.livekit_choice import ConflictingChoice, choose_livekit
        from local.stack.session import AccountResources, DevSession, RealLiveKit
        from local.stack.stack import StackOptions
        from local.stack.timeline import Timeline
    except ImportError as missing:
        raise click.ClickException(
            f"lkctl dev runs from a checkout of this repository ({missing}): run `make dev`, or "
            "`PYTHONPATH=functions:. lkctl dev` from its root"
        ) from missing
    if (aws_table is None) != (aws_queue_url is None):
        raise click.UsageError("--aws-table and --aws-queue-url go together")
    try:
        choice = choose_livekit(livekit_url, force_simulator)
    except ConflictingChoice as conflict:
        raise click.UsageError(str(conflict)) from conflict
    except ServerNotFound as missing:
        raise click.ClickException(str(missing)) from missing
    if choice.fallback:
        printer.status(choice.fallback)
    options = StackOptions(
        grace_seconds=grace,
        sweep_interval_seconds=sweep_interval,
        port=port,
        settings=_settings(settings),
    )
    if log_dir is not None:
        options = replace(options, log_dir=log_dir)
    session = DevSession(
        options,
        Timeline(),
        livekit=RealLiveKit(choice.url, api_key, api_secret) if choice.url else None,
        account=AccountResources(aws_table, aws_queue_url, aws_region)
        if aws_table and aws_queue_url
        else None,
        simulator_port=simulator_port,
        server=choice.server,
    )
    _serve(session, printer)


def _serve(session: DevSession, printer: Printer) -> None:
    """Start, print where everything is, stream the timeline; stop on Ctrl-C or SIGTERM."""
    stopped = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    terminal = sys.stdout  # while the stack runs, sys.stdout is its functions' log
    try:
        printer.status("starting the local stack...")
        try:
            session.start()
        except OSError as error:
            raise click.ClickException(f"could not start the local stack: {error}") from error
        info = session.info()
        click.echo(json.dumps(info), file=terminal)
        printer.status(f"live page: {info['api_url']}   logs: {session.options.log_dir}/   Ctrl-C stops")
        session.timeline.attach(terminal)
        while not stopped.wait(0.5):
            pass
        printer.status("stopping...")
    finally:
        session.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
