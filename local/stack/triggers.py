"""What invokes the functions besides HTTP, each as AWS does it.

- :class:`QueuePoller`: Lambda's SQS event source mapping for the timer function. Batches of up
  to the template's ``BatchSize``; with ``ReportBatchItemFailures`` only the records the function
  reports failed stay on the queue (they come back after the visibility timeout, and after
  ``maxReceiveCount`` receives the redrive policy moves them to the dead-letter queue); a
  function error keeps the whole batch.
- :class:`Schedule`: EventBridge Scheduler's ``rate()`` for the sweeper.
- :class:`EventDelivery`: EventBridge delivering "ECS Task State Change" events to the
  task-events function, asynchronously, in order, retried twice on a function error as Lambda
  retries an asynchronous invocation; only the ``lastStatus`` values the rule matches
  (``RULE_STATUSES``, which tests/infra holds the template to).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from control_plane.task_events import RULE_STATUSES
from local.stack.events import schedule_event, sqs_event
from local.stack.template import QueueMapping
from local.stack.timeline import Timeline, short_task

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)

Invoke = Callable[[str, dict[str, Any], float], Any]
LONG_POLL_SECONDS = 1  # short, so stopping the stack does not wait on a receive
ASYNC_RETRIES = 2
# What every sweep reports, changed or not: gauges and its own cost, not repairs.
SWEEP_GAUGES = (
    "ActiveAgents",
    "OldestAgentAgeSeconds",
    "Rooms",
    "RoomsSwept",
    "RunningTasks",
    "SweepDurationSeconds",
    "SweepLiveKitCalls",
    "WarmSlots",
)


class _Loop:
    """A daemon thread running ``step`` until stopped; ``stop`` returns once it has ended."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s failed a step", self._name)
                self._stopped.wait(1.0)

    def step(self) -> None:
        raise NotImplementedError


class QueuePoller(_Loop):
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        queue_arn: str,
        mapping: QueueMapping,
        invoke: Invoke,
        timeline: Timeline,
    ) -> None:
        super().__init__("timer-queue-poller")
        self._client = client
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._mapping = mapping
        self._invoke = invoke
        self._timeline = timeline

    def step(self) -> None:
        messages = self._client.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._mapping.batch_size,
            WaitTimeSeconds=LONG_POLL_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return
        for message in messages:
            self._timeline.emit("timer", *_describe_message(message["Body"]))
        try:
            result = self._invoke(
                self._mapping.module, sqs_event(messages, self._queue_arn), self._mapping.timeout_seconds
            )
        except Exception as error:
            self._timeline.emit("timer", f"function error, the batch comes back later: {error!r}")
            return
        failed = self._failed_ids(result)
        done = [m for m in messages if m["MessageId"] not in failed]
        if failed:
            self._timeline.emit(
                "timer", f"{len(failed)} message(s) failed: back after the visibility timeout"
            )
        if done:
            self._delete(done)

    def _failed_ids(self, result: Any) -> set[str]:
        if not self._mapping.reports_item_failures:
            return set()
        failures = result.get("batchItemFailures", []) if isinstance(result, dict) else []
        return {str(failure.get("itemIdentifier")) for failure in failures}

    def _delete(self, messages: list[Any]) -> None:
        try:
            self._client.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        except (BotoCoreError, ClientError) as error:
            log.warning("could not delete handled timer messages: %s", error)


class Schedule(_Loop):
    """Invokes the function at start, then every ``interval_seconds``. The run at start is the
    deploy's first sweep: the warm pool (``WARM_TASKS``) fills within seconds, not a minute later."""

    def __init__(
        self, module: str, interval_seconds: float, timeout_seconds: float, invoke: Invoke, timeline: Timeline
    ) -> None:
        super().__init__(f"schedule-{module}")
        self._module = module
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._invoke = invoke
        self._timeline = timeline
        self._ran = False

    def step(self) -> None:
        if self._ran and self._stopped.wait(self._interval):
            return
        self._ran = True
        report = self._invoke(self._module, schedule_event(), self._timeout)
        did = _describe_sweep(report)
        if did is not None:
            self._timeline.emit("sweep", did)


class EventDelivery(_Loop):
    def __init__(self, module: str, timeout_seconds: float, invoke: Invoke, timeline: Timeline) -> None:
        super().__init__(f"events-{module}")
        self._module = module
        self._timeout = timeout_seconds
        self._invoke = invoke
        self._timeline = timeline
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()

    def send(self, event: dict[str, Any]) -> None:
        if event["detail"]["lastStatus"] in RULE_STATUSES:  # the rule's pattern
            self._events.put(event)

    def step(self) -> None:
        try:
            event = self._events.get(timeout=0.2)
        except queue.Empty:
            return
        detail = event["detail"]
        task, status, desired = short_task(detail["taskArn"]), detail["lastStatus"], detail["desiredStatus"]
        self._timeline.emit("ecs", f"task {task} {status} (desired {desired})")
        for attempt in range(ASYNC_RETRIES + 1):
            try:
                self._invoke(self._module, event, self._timeout)
                return
            except Exception as error:
                self._timeline.emit("ecs", f"task event failed (attempt {attempt + 1}): {error!r}")
                if self._stopped.wait(1.0):
                    return


def _describe_message(body: str) -> tuple[str, str | None]:
    """The timeline's words for a timer message, and the room it is about."""
    try:
        message = json.loads(body)
    except ValueError:
        return "unreadable message", None
    kind = message.get("kind", "?")
    room = message.get("room") if isinstance(message.get("room"), str) else None
    about = [f"room {room}"] if room else []
    if message.get("task_arn"):
        about.append(f"task {short_task(message['task_arn'])}")
    return f"{kind}" + (f" ({', '.join(about)})" if about else ""), room


def _describe_sweep(report: Any) -> str | None:
    """What a sweep did, if anything (a sweep with nothing to repair stays off the timeline)."""
    if not isinstance(report, dict):
        return None
    counts = {
        name: n
        for name, n in (report.get("counts") or {}).items()
        if n and name.split("[")[0] not in SWEEP_GAUGES
    }
    if not counts:
        return None
    did = ", ".join(f"{name} {n:g}" for name, n in sorted(counts.items()))
    return f"visited {report.get('rooms_visited', '?')} room(s): {did}"
