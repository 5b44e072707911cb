"""The scheduled sweep, spread over ``SWEEP_GROUPS`` groups.

The schedule's invocation works out this minute's groups (:func:`plan.fan_out`) and hands each
to an invoker: on AWS a message per group on the sweep queue, which invokes the same function
once per group, each sweeping only its own attention shards; without one (the local stack,
``make dev``, tests) it runs every group here, one after the other. With one group (the
default) the schedule's invocation is the whole sweep, as before the groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from control_plane.shards import ATTENTION_SHARDS
from control_plane.sweeper.plan import SweepGroup, fan_out
from control_plane.sweeper.run import Sweeper, SweepReport

log = logging.getLogger(__name__)


class GroupInvoker(Protocol):
    def invoke(self, group: SweepGroup) -> None:
        """Start ``group``'s sweep elsewhere; raises if it could not be started."""
        ...


class GroupEvent(BaseModel):
    """What the fan-out sends each group's invocation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_group: int = Field(ge=0, lt=ATTENTION_SHARDS)
    sweep_groups: int = Field(ge=1, le=ATTENTION_SHARDS)
    untracked: bool

    @model_validator(mode="after")
    def _one_of_the_groups(self) -> GroupEvent:
        if self.sweep_group >= self.sweep_groups:
            raise ValueError(f"sweep group {self.sweep_group} is not one of {self.sweep_groups}")
        return self

    def group(self) -> SweepGroup:
        return SweepGroup(self.sweep_group, self.sweep_groups, self.untracked)


@dataclass(frozen=True)
class FanOutReport:
    """The schedule's invocation: the groups it started elsewhere, and those it swept itself."""

    groups: int
    invoked: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    swept: list[SweepReport] = field(default_factory=list)


class SweepFanOut:
    def __init__(
        self,
        sweeper: Sweeper,
        groups: int,
        untracked_every: int,
        interval_seconds: float,
        clock: Callable[[], float],
        invoker: GroupInvoker | None,
    ) -> None:
        self._sweeper = sweeper
        self._groups = groups
        self._untracked_every = untracked_every
        self._interval = interval_seconds
        self._clock = clock
        self._invoker = invoker

    def scheduled(self, remaining_seconds: Callable[[], float]) -> FanOutReport:
        """The schedule's run: fan this minute's groups out, or sweep them all here."""
        groups = fan_out(self._clock(), self._groups, self._untracked_every, self._interval)
        if self._invoker is None or len(groups) == 1:
            return FanOutReport(
                len(groups), swept=[self._sweeper.sweep(remaining_seconds, g) for g in groups]
            )
        invoked: list[int] = []
        failed: list[int] = []
        for group in groups:
            try:
                self._invoker.invoke(group)
                invoked.append(group.group)
            except Exception:
                log.exception(
                    "sweep group not started; the next sweep tries again", extra={"group": group.group}
                )
                failed.append(group.group)
        return FanOutReport(len(groups), invoked=invoked, failed=failed)

    def group(self, event: GroupEvent, remaining_seconds: Callable[[], float]) -> SweepReport:
        """One group's sweep, as the fan-out asked for it."""
        return self._sweeper.sweep(remaining_seconds, event.group())
