"""SQS adapter for the sweep's fan-out: one message per sweep group on the sweep queue, which
the sweeper function itself consumes (one message an invocation).

The queue keeps a message 60 s (``MessageRetentionPeriod``, SQS's least): a group's sweep that
did not start within the minute is superseded by the next minute's, never run late beside it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from control_plane.sweeper.plan import SweepGroup

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class SqsSweepGroups:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def invoke(self, group: SweepGroup) -> None:
        body = {"sweep_group": group.group, "sweep_groups": group.groups, "untracked": group.untracked}
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(body))
