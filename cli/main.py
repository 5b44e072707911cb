"""``lkctl``: the command group and the options that say where the API is."""

from __future__ import annotations

import click

from cli import dev, gc, join, rooms, sim, stats
from cli.base import Cli
from cli.client import Target

DEFAULT_STACK = "livekit-agents-dev"  # infra/samconfig.toml's dev stack


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="LKCTL_URL", help="API base URL [default: the stack's ApiUrl output].")
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
def lkctl(ctx: click.Context, url: str | None, stack: str, region: str | None, profile: str | None) -> None:
    """Operate the LiveKit agent lifecycle: rooms, agents, sweeps, join tokens.

    Calls the stack's HTTP API, signed with your AWS credentials (SigV4).
    """
    ctx.obj = Cli(Target(url=url or None, stack=stack, region=region or None, profile=profile or None))


for module in (rooms, join, stats, gc, sim, dev):
    for subcommand in module.COMMANDS:
        lkctl.add_command(subcommand)


def main() -> None:
    lkctl(prog_name="lkctl")
