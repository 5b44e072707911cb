"""One printer for every command: results to stdout, status to stderr (lk's printer.go).

A result is an API model: ``--json`` prints it as the API sent it (the same pydantic model),
otherwise a rich table. ``--quiet`` mutes status lines, never results. Streams are injectable,
so tests read exactly what a user would see.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table


def when(epoch: float | None, now: float | None = None) -> str:
    """``2026-11-22 04:41:00Z (12s ago)``; a dash for none."""
    if epoch is None:
        return "-"
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    delta = round(epoch - now)
    relative = f"in {_span(delta)}" if delta > 0 else f"{_span(-delta)} ago"
    return f"{stamp} ({relative})"


def _span(seconds: int) -> str:
    """In the largest unit that still reads as a whole number people use: 90s, 17m, 5h, 7d."""
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)}m"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)}h"
    return f"{round(seconds / 86400)}d"


def duration(value: float | None) -> str:
    """A length of time for people (``24s``, ``7d``); a dash for none."""
    return "-" if value is None else _span(round(value))


class Printer:
    def __init__(
        self,
        *,
        as_json: bool = False,
        quiet: bool = False,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
    ) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self._out = Console(file=out or sys.stdout, soft_wrap=True, highlight=False)
        self._err = Console(file=err or sys.stderr, highlight=False)

    def result(self, model: BaseModel, *tables: Table) -> None:
        """The command's answer: the model as JSON, or the tables made from it."""
        if self.as_json:
            self._out.print(model.model_dump_json(indent=2), markup=False, highlight=False)
            return
        for table in tables:
            self._out.print(table)

    def line(self, text: str) -> None:
        """A plain result line (a token to copy), never wrapped or styled."""
        if not self.as_json:
            self._out.print(text, markup=False, highlight=False, soft_wrap=True)

    def status(self, text: str) -> None:
        if not self.quiet:
            self._err.print(text, markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self._err.print(f"error: {text}", markup=False, highlight=False, soft_wrap=True)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("-" if cell is None else str(cell) for cell in row))
    return grid


def fields(title: str | None, pairs: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of one record's fields."""
    grid = Table(title=title, title_justify="left", show_header=False)
    grid.add_column("field", style="bold")
    grid.add_column("value", overflow="fold")
    for name, value in pairs:
        grid.add_row(name, "-" if value is None else str(value))
    return grid
