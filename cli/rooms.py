"""``lkctl rooms``, ``show ROOM``, ``close ROOM``, ``reset ROOM``."""

from __future__ import annotations

import click

from api.models import PAGE_SIZE_MAX, CloseResult, ResetResult, RoomDetail, RoomPage, RoomSummary
from cli.base import Cli, command
from cli.client import room_path
from cli.printer import fields, seconds, table, when
from control_plane.room import RoomState


@command("rooms")
@click.option("--state", type=click.Choice([s.value for s in RoomState]), help="Only rooms in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Rooms to show.")
@click.option("--cursor", help="Start after this cursor (printed when more rooms follow).")
def list_rooms(cli: Cli, state: str | None, limit: int, cursor: str | None) -> None:
    """Rooms that are not settled: starting, active, grace, stopping, failed."""
    found: list[RoomSummary] = []
    while True:
        page = RoomPage.model_validate(
            cli.api.call(
                "GET", "/rooms", query={"state": state, "limit": min(PAGE_SIZE_MAX, limit), "cursor": cursor}
            )
        )
        found += page.rooms
        cursor = page.next_cursor
        if cursor is None or len(found) >= limit:
            break
    shown, more = found[:limit], cursor if len(found) <= limit else None
    cli.printer.result(
        RoomPage(rooms=shown, next_cursor=more),
        table(
            None,
            ["room", "state", "humans", "agent", "grace until", "updated"],
            [(r.name, r.state, r.humans, r.agent, when(r.grace_deadline), when(r.updated_at)) for r in shown],
        ),
    )
    cli.printer.status(f"{len(shown)} room(s)" + (f"; more with --cursor {more}" if more else ""))


@command("show")
@click.argument("room")
def show_room(cli: Cli, room: str) -> None:
    """One room: humans, agent, grace, crashes, when its record expires."""
    detail = RoomDetail.model_validate(cli.api.call("GET", room_path(room)))
    agent = detail.agent
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
            ("heartbeat age", seconds(agent.heartbeat_age_seconds) if agent else None),
            ("grace until", when(detail.grace.deadline) if detail.grace else None),
            ("crashes", ", ".join(when(at) for at in detail.crashes) or None),
            ("failed", when(detail.failed_at) if detail.failed_at else None),
            ("next launch", when(detail.next_launch_at) if detail.next_launch_at else None),
            ("departure timeout", seconds(detail.departure_timeout)),
            ("created", when(detail.created_at)),
            ("updated", when(detail.updated_at)),
            ("closed", when(detail.closed_at) if detail.closed_at else None),
            ("record expires", when(detail.expires_at) if detail.expires_at else "never (active)"),
        ],
    )
    humans = table(
        "humans",
        ["sid", "identity", "joined"],
        [(h.sid, h.identity, when(h.joined_at)) for h in detail.humans],
    )
    expected = table(
        "expected (join token issued)",
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


COMMANDS = (list_rooms, show_room, close_room, reset_room)
