"""``lkctl gc``: run the sweep now."""

from __future__ import annotations

from api.models import SweepSummary
from cli.base import Cli, command
from cli.printer import fields, table


@command("gc")
def sweep_now(cli: Cli) -> None:
    """Run one sweep now (the one the schedule runs every minute) and show what it did."""
    cli.printer.status("sweeping (up to the API's 30 s)...")
    summary = SweepSummary.model_validate(cli.api.call("POST", "/gc"))
    cli.printer.result(
        summary,
        fields(
            "sweep",
            [
                ("rooms visited", f"{summary.rooms_visited} of {summary.rooms_total}"),
                ("complete", "yes" if summary.complete else f"no: resumes at {summary.next_cursor}"),
                ("took", f"{summary.duration_seconds:.1f}s"),
            ],
        ),
        table("did", ["metric", "count"], [(name, f"{n:g}") for name, n in sorted(summary.counts.items())]),
    )


COMMANDS = (sweep_now,)
