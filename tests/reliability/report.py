"""The reliability report: figures the tests record, one table at the end of the run, one JSON file.

A test asks for the ``figures`` fixture and calls ``figures.record(scenario, outcome, **numbers)``
(again with the same scenario to add or update numbers). The plugin marks each row with its
test's result, prints scenario → outcome → figures after the run, and writes the same rows to
``bench/results/reliability.json`` (git-ignored; versioned so charts can read it).

Four figures are columns of their own because the issue asks for them by name: ``storm`` (how
many Lambdas or deliveries hit at once), ``replayed`` (events delivered again: LiveKit's
retries, duplicates, late retries, redelivered timers), ``faults`` (faults injected) and
``duplicates`` (effects found twice: must be 0). Any other number is listed as ``name=value``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

PLUGIN_NAME = "reliability-report"
RESULTS_PATH = Path("bench/results/reliability.json")
RESULTS_VERSION = 1
HEADLINE = ("storm", "replayed", "faults", "duplicates")

Number = int | float


@dataclass
class Row:
    scenario: str
    outcome: str
    test: str
    result: str = "passed"
    figures: dict[str, Number] = field(default_factory=dict)


class Figures:
    """What one test records; rows are keyed by scenario, so a parametrized test names each case."""

    def __init__(self, report: ReliabilityReport, test: str) -> None:
        self._report = report
        self._test = test

    def record(self, scenario: str, outcome: str, **numbers: Number) -> None:
        row = self._report.rows.get(scenario)
        if row is None:
            row = self._report.rows[scenario] = Row(scenario=scenario, outcome=outcome, test=self._test)
        row.outcome = outcome
        row.figures.update(numbers)


class ReliabilityReport:
    def __init__(self, rootpath: Path) -> None:
        self.rootpath = rootpath
        self.rows: dict[str, Row] = {}

    def figures_for(self, test: str) -> Figures:
        return Figures(self, test)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            for row in self.rows.values():
                if row.test == report.nodeid:
                    row.result = "FAILED"

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.section("reliability: scenario → outcome → figures")
        for line in render_table(list(self.rows.values())):
            terminalreporter.write_line(line)
        path = self.write()
        terminalreporter.write_line(f"figures written to {path.relative_to(self.rootpath)}")

    def write(self) -> Path:
        path = self.rootpath / RESULTS_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = list(self.rows.values())
        document = {
            "version": RESULTS_VERSION,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "totals": totals(rows),
            "rows": [asdict(row) for row in rows],
        }
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return path


def totals(rows: list[Row]) -> dict[str, Number]:
    summed: dict[str, Number] = {name: 0 for name in HEADLINE}
    for row in rows:
        for name in HEADLINE:
            summed[name] += row.figures.get(name, 0)
    summed["scenarios"] = len(rows)
    summed["failed"] = sum(1 for row in rows if row.result != "passed")
    return summed


def _number(value: Number | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_table(rows: list[Row]) -> list[str]:
    """Aligned columns for a terminal: scenario, outcome, result, the headline figures, the rest."""
    header = ["scenario", "outcome", "result", *HEADLINE, "other figures"]
    body = [
        [
            row.scenario,
            row.outcome,
            row.result,
            *(_number(row.figures.get(name)) for name in HEADLINE),
            " ".join(f"{k}={_number(v)}" for k, v in row.figures.items() if k not in HEADLINE),
        ]
        for row in rows
    ]
    summed = totals(rows)
    body.append(
        [
            f"total ({summed['scenarios']} scenarios)",
            f"{summed['failed']} failed",
            "",
            *(_number(summed[name]) for name in HEADLINE),
            "",
        ]
    )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {header.index(name) for name in HEADLINE}

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule, *(line(cells) for cells in body[:-1]), rule, line(body[-1])]
