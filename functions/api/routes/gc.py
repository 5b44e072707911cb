"""Operator route: run the sweep now instead of waiting for the schedule."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from api.logic import gc as logic
from api.models import SweepSummary
from api.routes.common import UNPROCESSABLE, deps_of, responses, time_left

router = Router()


@router.post(
    "/gc",
    summary="Run one sweep now and return its summary",
    description="The same sweep the schedule runs every minute; safe beside it.",
    tags=["operators"],
    responses=responses("What the sweep did", UNPROCESSABLE),
)
def sweep_now() -> SweepSummary:
    return logic.sweep_now(deps_of(router), time_left(router))
