"""``lkctl``: the command groups (``lk``'s noun-verb shape) and the options that say where the API is.

Nouns: ``room`` (list, show, join, close, reset), ``pool`` (show), ``stats`` (show), ``sweep``
(run), ``sim`` (the local LiveKit simulator) and ``dev`` (the local stack). The first spellings
(``rooms``, ``show``, ``join``, ``close``, ``reset``, ``gc``, bare ``stats``) stay as hidden
aliases, so scripts written against them keep working.
"""

from __future__ import annotations

import copy

import click

from cli import dev, gc, join, rooms, sim, stats
from cli.base import Cli
from cli.client import LOCAL_STACK_URL, Target

DEFAULT_STACK = "livekit-agents-dev"  # infra/samconfig.toml's dev stack


class _DefaultVerb(click.Group):
    """A noun whose first verb runs when none is given: ``lkctl stats`` is ``lkctl stats show``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [next(iter(self.commands)), *args]
        return super().parse_args(ctx, args)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="LKCTL_URL", help="API base URL [default: the stack's ApiUrl output].")
@click.option(
    "--dev",
    "local",
    is_flag=True,
    envvar="LKCTL_DEV",
    help=f"The local stack (`make dev`): --url defaults to {LOCAL_STACK_URL}, no AWS credentials, "
    "nothing signed.",
)
@click.option(
    "--stack",
    envvar="LKCTL_STACK",
    default=DEFAULT_STACK,
    show_default=True,
    help="CloudFormation stack whose ApiUrl output to use.",
)
@click.option("--region", envvar="AWS_REGION", help="AWS Region of the stack [default: your AWS config].")
@click.option("--profile", envvar="AWS_PROFILE", help="AWS profile to sign with [default: the chain].")
@click.pass_context
def lkctl(
    ctx: click.Context, url: str | None, local: bool, stack: str, region: str | None, profile: str | None
) -> None:
    """Operate the LiveKit agent lifecycle: rooms, the warm pool, sweeps, join tokens.

    Calls the stack's HTTP API, signed with your AWS credentials (SigV4); with --dev, the local
    stack of `make dev`, unsigned.
    """
    ctx.obj = Cli(
        Target(url=url or None, stack=stack, region=region or None, profile=profile or None, local=local)
    )


def _noun(name: str, help_text: str, *verbs: tuple[str, click.Command], default: bool = False) -> click.Group:
    group = (_DefaultVerb if default else click.Group)(name, help=help_text)
    for verb, command in verbs:
        group.add_command(command, verb)
    return group


def _alias(command: click.Command) -> click.Command:
    """The same command under its first spelling, left out of ``--help``."""
    hidden = copy.copy(command)
    hidden.hidden = True
    return hidden


lkctl.add_command(
    _noun(
        "room",
        "Rooms the control plane tracks: list, show, join (a token), close, reset.",
        ("list", rooms.list_rooms),
        ("show", rooms.show_room),
        ("join", join.join_room),
        ("close", rooms.close_room),
        ("reset", rooms.reset_room),
    )
)
lkctl.add_command(_noun("pool", "The warm pool of agent workers.", ("show", stats.show_pool)))
lkctl.add_command(
    _noun(
        "stats",
        "The control plane at a glance (`lkctl stats` alone shows it).",
        ("show", stats.show_stats),
        default=True,
    )
)
lkctl.add_command(_noun("sweep", "The sweep the schedule runs every minute.", ("run", gc.sweep_now)))
lkctl.add_command(sim.sim)
lkctl.add_command(dev.dev)
for old, command in (
    ("rooms", rooms.list_rooms),
    ("show", rooms.show_room),
    ("join", join.join_room),
    ("close", rooms.close_room),
    ("reset", rooms.reset_room),
    ("gc", gc.sweep_now),
):
    lkctl.add_command(_alias(command), old)


def main() -> None:
    lkctl(prog_name="lkctl")
