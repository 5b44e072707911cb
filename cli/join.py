"""``lkctl join ROOM IDENTITY``: a participant token, for trying an app by hand."""

from __future__ import annotations

import click

from api.models import TOKEN_TTL_DEFAULT_SECONDS, TOKEN_TTL_MAX_SECONDS, TOKEN_TTL_MIN_SECONDS, JoinResponse
from cli.base import Cli, command
from cli.client import room_path
from cli.errors import CliError, ExitCode
from cli.printer import fields, when


def _attributes(pairs: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--attribute {pair!r}: write it as KEY=VALUE", ExitCode.USAGE)
        parsed[key] = value
    return parsed


@command("join")
@click.argument("room")
@click.argument("identity")
@click.option("--name", help="Display name.")
@click.option("--metadata", help="Participant metadata (often JSON).")
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE", help="An attribute.")
@click.option(
    "--ttl",
    type=click.IntRange(TOKEN_TTL_MIN_SECONDS, TOKEN_TTL_MAX_SECONDS),
    default=TOKEN_TTL_DEFAULT_SECONDS,
    show_default=True,
    help="Seconds the token may be used to connect.",
)
def join_room(
    cli: Cli,
    room: str,
    identity: str,
    name: str | None,
    metadata: str | None,
    attributes: tuple[str, ...],
    ttl: int,
) -> None:
    """Get a join token for IDENTITY in ROOM; the agent is requested at once."""
    body = {
        "identity": identity,
        "name": name,
        "metadata": metadata,
        "attributes": _attributes(attributes),
        "ttl_seconds": ttl,
    }
    answer = JoinResponse.model_validate(
        cli.api.call("POST", room_path(room, "join"), body={k: v for k, v in body.items() if v is not None})
    )
    cli.printer.result(
        answer,
        fields(
            f"join {answer.room} as {answer.identity}",
            [
                ("LiveKit URL", answer.url),
                ("token expires", when(answer.token_expires_at)),
                ("agent", answer.agent.status + (" (reused)" if answer.reused else "")),
                ("task", answer.agent.task_arn),
            ],
        ),
    )
    cli.printer.line(answer.token)
    cli.printer.status("connect with the URL and token above, e.g. at https://meet.livekit.io (custom tab)")
