"""What every command shares: the ``Cli`` object (target and printer) and ``@command``, which
adds ``--json``/``--quiet`` and turns a ``CliError`` into its message on stderr and exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from cli.client import ApiClient, Target
from cli.errors import CliError
from cli.printer import Printer


@dataclass
class Cli:
    """The target to call and how to print; the API client is made on first use."""

    target: Target
    printer: Printer = field(default_factory=Printer)
    _client: ApiClient | None = None

    @property
    def api(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.target)
        return self._client


def command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A subcommand whose function takes the ``Cli`` first, then its own options."""

    def decorate(func: Callable[..., None]) -> click.Command:
        @functools.wraps(func)
        def run(*args: Any, as_json: bool, quiet: bool, **kwargs: Any) -> None:
            context = click.get_current_context()
            cli = context.find_object(Cli)
            assert cli is not None, "the lkctl group makes the Cli object"
            cli.printer = Printer(as_json=as_json, quiet=quiet)
            try:
                func(cli, *args, **kwargs)
            except CliError as error:
                cli.printer.error(error.message)
                context.exit(error.exit_code)

        run = click.option("--quiet", "-q", is_flag=True, help="No status lines on stderr.")(run)
        run = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON, not a table.")(run)
        return click.command(name)(run)

    return decorate
