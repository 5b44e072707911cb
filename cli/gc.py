"""``lkctl sweep run``: run the sweep now, and say what it found and did in words.

The sweep reports its metrics by CloudWatch name (``TasksStopped[Reason=max_age]``); people read
"tasks stopped (max_age)". What it *found* (gauges: rooms by state, agents, warm slots, the
oldest agent) is shown apart from what it *did* (counts, 0s left out).
"""

from __future__ import annotations

import re

from api.models import SweepSummary
from cli.base import Cli, command
from cli.printer import duration, fields, table

# Gauges the sweep puts every run: the world it saw, not actions it took.
FOUND = frozenset({"Rooms", "ActiveAgents", "RunningTasks", "WarmSlots", "OldestAgentAgeSeconds"})
# Said by the summary's own fields already.
SAID = frozenset({"SweepDurationSeconds", "RoomsSwept", "SweepIncomplete"})
_METRIC = re.compile(r"^(?P<name>[A-Za-z]+)(\[(?P<dimensions>[^\]]*)\])?$")
_WORD = re.compile(r"[A-Z][a-z]*|[a-z]+")


def _label(metric: str) -> tuple[str, str]:
    """``TasksStopped[Reason=max_age]`` -> (``TasksStopped``, ``tasks stopped (max_age)``)."""
    match = _METRIC.match(metric)
    if match is None:
        return metric, metric
    name = match["name"]
    words = " ".join(word.lower() for word in _WORD.findall(name.removesuffix("Seconds")))
    values = [pair.partition("=")[2] for pair in (match["dimensions"] or "").split(",") if pair]
    return name, words + (f" ({', '.join(values)})" if values else "")


def _value(name: str, value: float) -> str:
    return duration(value) if name.endswith("Seconds") else f"{value:,.0f}"


def _rows(counts: dict[str, float], keep: set[str] | frozenset[str], zeros: bool) -> list[tuple[str, str]]:
    """Rows of the metrics named in ``keep``; a 0 only if ``zeros`` and the metric has no dimension
    (``warm slots 0`` says something, ``rooms (closed) 0`` does not)."""
    rows = []
    for metric, value in sorted(counts.items()):
        name, label = _label(metric)
        if name in keep and (value != 0 or (zeros and name == metric)):
            rows.append((label, _value(name, value)))
    return rows


@command("run")
def sweep_now(cli: Cli) -> None:
    """Run one sweep now (the one the schedule runs every minute) and show what it did."""
    cli.printer.status("sweeping (up to the API's 30 s)...")
    summary = SweepSummary.model_validate(cli.api.call("POST", "/gc"))
    names = {_label(metric)[0] for metric in summary.counts}
    did = _rows(summary.counts, names - FOUND - SAID, zeros=False)
    cli.printer.result(
        summary,
        fields(
            "sweep",
            [
                ("rooms visited", f"{summary.rooms_visited} of {summary.rooms_total}"),
                ("complete", "yes" if summary.complete else f"no: resumes at {summary.next_cursor}"),
                ("took", f"{summary.duration_seconds:.1f} s"),
            ],
        ),
        table("found", ["what", "now"], _rows(summary.counts, FOUND, zeros=True)),
        table("did", ["what", "count"], did or [("nothing to repair", "-")]),
    )
