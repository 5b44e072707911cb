"""SQS adapter for timers: ``DelaySeconds`` gives second precision up to 15 minutes.

Messages cannot be cancelled, so each carries what its consumer re-checks (a grace
generation); a stale one is harmless because the consumer only reconciles. Bodies are JSON in
printable ASCII (``aws_names.sqs_safe_json``): SQS refuses control characters and U+FFFE/U+FFFF,
which a room name may hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from control_plane.aws_names import sqs_safe_json
from control_plane.worker_protocol import TimerMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

MAX_DELAY_SECONDS = 900


class SqsTimers:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, message: TimerMessage, delay_seconds: int) -> None:
        """Raises ValueError for a delay SQS refuses or a room name that is not valid Unicode."""
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"SQS DelaySeconds must be within 0..{MAX_DELAY_SECONDS}, got {delay_seconds}")
        body = sqs_safe_json(message.model_dump(mode="json"))
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay_seconds)
