"""SQS adapter for timers: ``DelaySeconds`` gives second precision up to 15 minutes.

Messages cannot be cancelled, so each carries what its consumer re-checks (a grace
generation); a stale one is harmless because the consumer only reconciles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from control_plane.worker_protocol import TimerMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

MAX_DELAY_SECONDS = 900


class SqsTimers:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, message: TimerMessage, delay_seconds: int) -> None:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"SQS DelaySeconds must be within 0..{MAX_DELAY_SECONDS}, got {delay_seconds}")
        self._client.send_message(
            QueueUrl=self._queue_url, MessageBody=message.model_dump_json(), DelaySeconds=delay_seconds
        )
