"""SQS timer queue: grace expiries, worker-ready signals and respawns, with partial failures.

A message that fails is reported back alone and retried by SQS; after the queue's
``maxReceiveCount`` it moves to the dead-letter queue (a poison message never loops).

A record starts only while the invocation still has the time one record may need
(:data:`RECORD_BUDGET_MS`). With LiveKit degraded, a batch would otherwise run into the Lambda
timeout and every grace expiry in it would wait out the queue's visibility timeout; instead the
records that do not fit are reported failed at once and made visible again immediately.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from control_plane import composition
from control_plane.adapters.livekit_gateway import DEFAULT_TIMEOUT_SECONDS
from control_plane.settings import METRICS_NAMESPACE
from control_plane.worker_protocol import TIMER_MESSAGE, sender_may_send
from handlers import runtime

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

# What one record may need. Its reconcile makes at most three LiveKit calls in a row (list the
# room's dispatches; create or delete one; ListRooms when a dispatch call answers 503, to tell a
# closed room from an outage), each cut off at the gateway's timeout, plus a margin for its
# DynamoDB, ECS and SQS calls. 18 s: a fresh 30 s invocation always starts its first record.
LIVEKIT_CALLS_PER_RECORD = 3
AWS_CALLS_MARGIN_SECONDS = 3.0
RECORD_BUDGET_MS = int((LIVEKIT_CALLS_PER_RECORD * DEFAULT_TIMEOUT_SECONDS + AWS_CALLS_MARGIN_SECONDS) * 1000)

logger = Logger(service="livekit-timer")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-timer")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-timer")
# A batch whose every record failed is reported record by record too, not raised: SQS then
# retries exactly those, and the invocation is not counted as a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RecordDeferred(Exception):
    """Not started: too little time left in this invocation for one more record."""


class SqsVisibility:
    """Hands a received message back to its queue before its visibility timeout runs out."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def release(self, receipt_handle: str) -> None:
        """Visible again now. Best effort: if this fails, the visibility timeout does it later."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning("could not release a deferred timer message", extra={"error": str(error)})


@lru_cache(maxsize=1)
def queue_visibility() -> SqsVisibility:
    """Short timeouts and one retry: it runs when the invocation is already short of time."""
    config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2})
    return SqsVisibility(boto3.client("sqs", config=config), composition.settings().timer_queue_url)


@tracer.capture_method
def handle_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    remaining_ms = lambda_context.get_remaining_time_in_millis()
    if remaining_ms < RECORD_BUDGET_MS:
        logger.warning(
            "timer message deferred: too little time left for it",
            extra={
                "message_id": record.message_id,
                "remaining_ms": remaining_ms,
                "budget_ms": RECORD_BUDGET_MS,
            },
        )
        metrics.add_metric(name="TimerMessagesDeferred", unit="Count", value=1)
        queue_visibility().release(record.receipt_handle)
        raise RecordDeferred(f"{remaining_ms} ms left, {RECORD_BUDGET_MS} ms needed")
    message = TIMER_MESSAGE.validate_json(record.body)
    logger.append_keys(timer_kind=message.kind)
    sender = record.attributes.get("SenderId")  # always there from SQS; absent in hand-made events
    if not sender_may_send(
        message.kind, getattr(message, "task_arn", None), sender, composition.settings().agent_task_role_id
    ):
        # Dropped, not failed: a forged message must not be retried into the DLQ's alarm.
        logger.warning(
            "timer message from a sender not allowed to send it: dropped", extra={"sender": sender}
        )
        metrics.add_metric(name="TimerMessagesForged", unit="Count", value=1)
        return
    composition.controller(metrics).handle_timer(message)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )


def prime() -> None:
    """At init, what a first batch would build: ports, clients and the LiveKit gateway (livekit-api
    is imported already: most timer messages call LiveKit). Nothing is called over the network."""
    composition.prime(metrics)
    composition.livekit_gateway()


runtime.at_init(prime)
