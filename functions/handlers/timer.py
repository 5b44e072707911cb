"""SQS timer queue: grace expiries, worker-ready signals and respawns, with partial failures.

A message that fails is reported back alone and retried by SQS; after the queue's
``maxReceiveCount`` it moves to the dead-letter queue (a poison message never loops).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from control_plane import composition
from control_plane.settings import METRICS_NAMESPACE
from control_plane.worker_protocol import TIMER_MESSAGE

logger = Logger(service="livekit-timer")
copy_config_to_registered_loggers(source_logger=logger, include={"control_plane"})
tracer = Tracer(service="livekit-timer")
metrics = Metrics(namespace=METRICS_NAMESPACE, service="livekit-timer")
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    message = TIMER_MESSAGE.validate_json(record.body)
    logger.append_keys(timer_kind=message.kind)
    composition.controller(metrics).handle_timer(message)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
