"""The control plane's side of one worker item, through the control plane's own store.

Bound to one task, so the worker tests read and write its item exactly as the Lambdas do
(``DynamoDBStore`` keys it by the task role id and task id, and believes it only for that task).
"""

from __future__ import annotations

import time
from typing import Any

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.ports import ObservedTaskState
from control_plane.worker_protocol import WorkerRecord, worker_pk


class ControlPlaneView:
    def __init__(self, client: Any, table: str, *, task_role_id: str, task_arn: str) -> None:
        self._store = DynamoDBStore(client, table, task_role_id=task_role_id)
        self._task_arn = task_arn
        self.key = worker_pk(task_arn, task_role_id)

    def get(self) -> WorkerRecord | None:
        return self._store.get_worker(self._task_arn)

    def mark_draining(self) -> None:
        self._store.mark_draining(self._task_arn)

    def reserve_slot(self, room: str, now: float, jobs_per_task: int = 1) -> bool:
        """Take a slot on this worker for ``room``, by the control plane's conditional write."""
        worker = self.get()
        assert worker is not None
        return self._store.reserve_slot(worker, room, now, jobs_per_task)

    def record_launch(self) -> None:
        """What the control plane writes right after RunTask: the item, in the worker index."""
        self.record_ecs_state(0, "PROVISIONING")

    def record_ecs_state(self, version: int, last_status: str) -> None:
        self._store.record_task_state(
            ObservedTaskState(
                task_arn=self._task_arn, version=version, last_status=last_status, seen_at=time.time()
            )
        )
