"""``lkctl stats show`` and ``lkctl pool show``: the control plane at a glance, from ``GET /stats``.

Figures nothing measured read "n/a" with the reason, never 0: the local stack feeds no
CloudWatch, so its last hour is unknown rather than quiet.
"""

from __future__ import annotations

from api.models import Stats
from cli.base import Cli, command
from cli.printer import duration, fields, table

NO_CLOUDWATCH = "n/a (no CloudWatch data)"


def _oldest(answer: Stats) -> str:
    if answer.oldest_agent_age_seconds is not None:
        return duration(answer.oldest_agent_age_seconds)
    if answer.active_agents == 0 and answer.warm_slots == 0:
        return "none running"
    return "n/a (none started yet, or ECS unreadable)"


@command("show")
def show_stats(cli: Cli) -> None:
    """Rooms by state, agents, free warm slots, oldest agent task, the last hour's counts."""
    answer = Stats.model_validate(cli.api.call("GET", "/stats"))
    hour = answer.last_hour
    cli.printer.result(
        answer,
        fields(
            "now",
            [
                ("agents (starting, active, grace)", answer.active_agents),
                ("free warm slots", answer.warm_slots),
                ("oldest agent task", _oldest(answer)),
            ],
        ),
        table(
            "rooms by state",
            ["state", "rooms"],
            [(state, count) for state, count in answer.rooms_by_state.items() if count],
        ),
        fields(
            "last hour",
            [
                ("agent starts", hour.agent_starts if hour else NO_CLOUDWATCH),
                ("agent stops", hour.agent_stops if hour else NO_CLOUDWATCH),
                ("grace cancels", hour.grace_cancels if hour else NO_CLOUDWATCH),
                ("crashes", hour.crashes if hour else NO_CLOUDWATCH),
            ],
        ),
    )


@command("show")
def show_pool(cli: Cli) -> None:
    """The warm pool now: free slots on ready workers, agents running, the oldest task's age."""
    answer = Stats.model_validate(cli.api.call("GET", "/stats"))
    cli.printer.result(
        answer,
        fields(
            "warm pool",
            [
                ("free warm slots", f"{answer.warm_slots} (ready workers' slots no room uses)"),
                ("agents (starting, active, grace)", answer.active_agents),
                ("oldest agent task", _oldest(answer)),
            ],
        ),
    )
