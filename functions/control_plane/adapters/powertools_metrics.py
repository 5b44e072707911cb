"""Metrics sink over Powertools ``Metrics`` (CloudWatch EMF, flushed by the handler decorator).

A metric with extra dimensions (a reason, a state) cannot share the handler's metric set, whose
dimensions are fixed, so it is written as its own EMF line with ``single_metric``; it keeps the
function's ``service`` dimension so alarms can select it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit


class PowertoolsMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(
        self, name: str, value: float = 1, unit: str = "Count", dimensions: Mapping[str, str] | None = None
    ) -> None:
        if not dimensions:
            self._metrics.add_metric(name=name, unit=unit, value=value)
            return
        default_dimensions = {"service": str(self._metrics.service), **dimensions}
        with single_metric(
            name=name,
            unit=MetricUnit(unit),
            value=value,
            namespace=self._metrics.namespace,
            default_dimensions=default_dimensions,
        ):
            pass
