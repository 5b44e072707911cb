"""Metrics sink over Powertools ``Metrics`` (CloudWatch EMF, flushed by the handler decorator)."""

from __future__ import annotations

from aws_lambda_powertools import Metrics


class PowertoolsMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self._metrics.add_metric(name=name, unit=unit, value=value)
