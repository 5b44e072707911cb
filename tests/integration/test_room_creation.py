"""Rooms this project creates outlive the grace period (LiveKit's default departure is 20 s)."""

from __future__ import annotations

from control_plane import composition
from handlers import webhook
from local.fixtures import LocalAws


def test_created_rooms_get_a_departure_timeout_of_at_least_the_grace_period(aws: LocalAws) -> None:
    controller = composition.controller(webhook.metrics)

    created = controller.create_room("support-call")

    grace = composition.settings().grace_period_seconds
    assert created.departure_timeout >= grace
    assert aws.livekit.state.get_room("support-call").departure_timeout >= grace
