"""``lkctl room list``, ``room show ROOM``, ``room close ROOM``, ``room reset ROOM``."""

from __future__ import annotations

import click

from api.models import PAGE_SIZE_MAX, CloseResult, ResetResult, RoomDetail, RoomPage, RoomSummary
from api.views import CLOSE_REASONS
from cli.base import Cli, command
from cli.client import room_path
from cli.printer import duration, fields, table, when
from control_plane.room import NEEDS_ATTENTION, RoomState

# The states GET /rooms can list: the attention index holds no idle or closed room.
LISTABLE_STATES = [state.value for state in RoomState if state in NEEDS_ATTENTION]


@command("list")
@click.option("--state", type=click.Choice(LISTABLE_STATES), help="Only rooms in this state.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help=f"Rooms to show, read in pages of up to {PAGE_SIZE_MAX} (the API's page size).",
)
@click.option("--cursor", help="Start after this cursor (printed when more rooms follow).")
def list_rooms(cli: Cli, state: str | None, limit: int, cursor: str | None) -> None:
    """Rooms that are not settled: starting, active, grace, stopping, failed."""
    found: list[RoomSummary] = []
    while True:
        # Never ask for more than still fits: the cursor then resumes right after the last shown.
        wanted = min(PAGE_SIZE_MAX, limit - len(found))
        page = RoomPage.model_validate(
            cli.api.call("GET", "/rooms", query={"state": state, "limit": wanted, "cursor": cursor})
        )
        found += page.rooms
        cursor = page.next_cursor
        if cursor is None or len(found) >= limit:
            break
    cli.printer.result(
        RoomPage(rooms=found, next_cursor=cursor),
        table(
            None,
            ["room", "state", "humans", "agent", "grace until", "updated"],
            [(r.name, r.state, r.humans, r.agent, when(r.grace_deadline), when(r.updated_at)) for r in found],
        ),
    )
    again = f"lkctl room list{f' --state {state}' if state else ''} --cursor {cursor}"
    more = f"; more with `{again}`" if cursor else ""
    cli.printer.status(f"{len(found)} room(s){more}")


@command("show")
@click.argument("room")
def show_room(cli: Cli, room: str) -> None:
    """One room: humans, agent, grace, crashes, why and when it closed, when its record expires."""
    detail = RoomDetail.model_validate(cli.api.call("GET", room_path(room)))
    agent = detail.agent
    reason = CLOSE_REASONS[detail.closed_reason] if detail.closed_reason else None
    summary = fields(
        f"room {detail.name}",
        [
            ("state", detail.state),
            ("session", detail.sid),
            ("humans", len(detail.humans)),
            ("agent", agent.status if agent else "none"),
            ("task", agent.task_arn if agent else None),
            ("task started", when(agent.task_started_at) if agent else None),
            ("dispatch", agent.dispatch_id if agent else None),
            ("dispatched", when(agent.dispatched_at) if agent else None),
            ("worker", agent.worker_status if agent else None),
            ("heartbeat age", duration(agent.heartbeat_age_seconds) if agent else None),
            ("grace until", when(detail.grace.deadline) if detail.grace else None),
            ("grace because", detail.grace.why if detail.grace else None),
            ("crashes", ", ".join(when(at) for at in detail.crashes) or None),
            ("failed", when(detail.failed_at) if detail.failed_at else None),
            ("next launch", when(detail.next_launch_at) if detail.next_launch_at else None),
            ("departure timeout", duration(detail.departure_timeout)),
            ("created", when(detail.created_at)),
            ("updated", when(detail.updated_at)),
            ("closed", f"{when(detail.closed_at)}: {reason}" if detail.closed_at else None),
            ("closing because", reason if reason and not detail.closed_at else None),
            ("record expires", when(detail.expires_at) if detail.expires_at else "never (active)"),
        ],
    )
    humans = table(
        "humans",
        ["sid", "identity", "joined"],
        [(h.sid, h.identity, when(h.joined_at)) for h in detail.humans],
    )
    expected = table(
        "join reservations (token issued, counted as present)",
        ["identity", "until"],
        [(e.identity, when(e.until)) for e in detail.expected],
    )
    tables = [summary] + ([humans] if detail.humans else []) + ([expected] if detail.expected else [])
    cli.printer.result(detail, *tables)


@command("close")
@click.argument("room")
@click.option("--delete-room", is_flag=True, help="Also delete the LiveKit room: everyone is disconnected.")
def close_room(cli: Cli, room: str, delete_room: bool) -> None:
    """Remove the room's agent now (humans still there get a fresh one)."""
    result = CloseResult.model_validate(
        cli.api.call("POST", room_path(room, "close"), body={"delete_room": delete_room})
    )
    cli.printer.result(
        result,
        fields(
            f"closed {result.room}",
            [
                ("state", result.state),
                ("agent removed", "yes" if result.agent_removed else "no (there was none)"),
                ("LiveKit room deleted", "yes" if result.room_deleted else "no"),
                ("fresh agent", "yes: humans are still there" if result.relaunched else "no"),
            ],
        ),
    )


@command("reset")
@click.argument("room")
def reset_room(cli: Cli, room: str) -> None:
    """Clear a failed (crash-looping) room so its humans get an agent."""
    result = ResetResult.model_validate(cli.api.call("POST", room_path(room, "reset")))
    cli.printer.result(
        result,
        fields(
            f"reset {result.room}",
            [
                ("was failed", "yes" if result.was_failed else "no"),
                ("state", result.state),
                ("agent", result.agent),
            ],
        ),
    )
