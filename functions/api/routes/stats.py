"""Operator route: the control plane at a glance."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from api.logic import stats as logic
from api.models import Stats
from api.routes.common import UNPROCESSABLE, deps_of, responses

router = Router()


@router.get(
    "/stats",
    summary="Rooms by state, active agents, warm slots, oldest agent, the last hour's counts",
    tags=["operators"],
    responses=responses("The figures", UNPROCESSABLE),
)
def stats() -> Stats:
    return logic.stats(deps_of(router))
