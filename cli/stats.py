"""``lkctl stats``: the control plane at a glance."""

from __future__ import annotations

from api.models import Stats
from cli.base import Cli, command
from cli.printer import fields, seconds, table


@command("stats")
def show_stats(cli: Cli) -> None:
    """Rooms by state, active agents, warm slots, oldest agent, the last hour's counts."""
    answer = Stats.model_validate(cli.api.call("GET", "/stats"))
    hour = answer.last_hour
    cli.printer.result(
        answer,
        fields(
            "now",
            [
                ("active agents", answer.active_agents),
                ("warm slots", answer.warm_slots),
                ("oldest agent", seconds(answer.oldest_agent_age_seconds)),
            ],
        ),
        table("rooms by state", ["state", "rooms"], [(s, n) for s, n in answer.rooms_by_state.items() if n]),
        fields(
            "last hour",
            [
                ("agent starts", hour.agent_starts if hour else "unknown (CloudWatch unreadable)"),
                ("agent stops", hour.agent_stops if hour else None),
                ("grace cancels", hour.grace_cancels if hour else None),
                ("crashes", hour.crashes if hour else None),
            ],
        ),
    )


COMMANDS = (show_stats,)
