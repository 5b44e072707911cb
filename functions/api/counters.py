"""What the control plane did in the last hour, read back from its own CloudWatch metrics.

The functions already count agent starts, removals, grace cancels and crashes (Powertools EMF,
one ``service`` dimension per function); summing those beats keeping counters of our own in
DynamoDB, which would cost a write on every event. One ``GetMetricData`` call asks for each
metric of each function at one-minute resolution and adds them up. When CloudWatch holds no
metric of the namespace from the last three hours (the sweeper puts gauges every minute in a
deployed stack, so only a stack nothing feeds CloudWatch for, like the local one, has none),
nothing was measured: the answer is ``None``, never a row of zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.client import CloudWatchClient

# The POWERTOOLS_SERVICE_NAME of every function that may run the core (tests/infra checks it).
LIFECYCLE_SERVICES: tuple[str, ...] = (
    "livekit-webhook",
    "livekit-timer",
    "livekit-sweeper",
    "livekit-task-events",
    "livekit-api",
)
# LastHour field -> the metric the core counts it with.
LAST_HOUR_METRICS: dict[str, str] = {
    "agent_starts": "AgentTasksLaunched",
    "agent_stops": "AgentsRemoved",
    "grace_cancels": "GraceCancelled",
    "crashes": "AgentCrashes",
}
WINDOW = timedelta(hours=1)
RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class MetricQuery:
    field: str
    metric: str
    service: str


class CloudWatchCounters:
    def __init__(
        self, client: CloudWatchClient, namespace: str, services: Sequence[str] = LIFECYCLE_SERVICES
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._queries = [
            MetricQuery(field, metric, service)
            for field, metric in LAST_HOUR_METRICS.items()
            for service in services
        ]

    def last_hour(self, now: float) -> dict[str, int] | None:
        """Each ``LAST_HOUR_METRICS`` field summed over every function, for the hour before ``now``;
        ``None`` when CloudWatch has nothing of ours to sum."""
        if not self._client.list_metrics(Namespace=self._namespace, RecentlyActive="PT3H").get("Metrics"):
            return None
        end = datetime.fromtimestamp(now, UTC)
        queries: list[Any] = [
            {
                "Id": f"q{number}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": self._namespace,
                        "MetricName": query.metric,
                        "Dimensions": [{"Name": "service", "Value": query.service}],
                    },
                    "Period": RESOLUTION_SECONDS,
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }
            for number, query in enumerate(self._queries)
        ]
        totals = dict.fromkeys(LAST_HOUR_METRICS, 0.0)
        paginator = self._client.get_paginator("get_metric_data")
        for page in paginator.paginate(MetricDataQueries=queries, StartTime=end - WINDOW, EndTime=end):
            for result in page.get("MetricDataResults", []):
                query = self._queries[int(result["Id"].removeprefix("q"))]
                totals[query.field] += sum(result.get("Values", []))
        return {field: round(total) for field, total in totals.items()}
