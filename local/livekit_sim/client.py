"""A Python client for the simulator's control endpoint and worker API (``http.py``).

Used by ``lkctl sim``, scripted sessions and local agent workers. Plain ``urllib``, never a proxy
(the simulator listens on a local address). Every failure is a ``SimulatorError``: ``status`` is
the HTTP status, or 0 when the simulator could not be reached.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from local.livekit_sim.models import (
    ApiError,
    JobEnded,
    JoinRequest,
    JoinResult,
    LeaveResult,
    ParticipantKind,
    RefreshRequest,
    RefreshResult,
    Registered,
    RegisterWorker,
    SimState,
    Unregistered,
    WebhookFaults,
    WorkerMessage,
    WorkerMessages,
)

Model = TypeVar("Model", bound=BaseModel)


class SimulatorError(Exception):
    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}


class SimulatorClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # --- control endpoint ------------------------------------------------------------------------

    def state(self) -> SimState:
        return self._call("GET", "/sim/state", SimState)

    def join(
        self,
        room: str,
        identity: str,
        kind: ParticipantKind = ParticipantKind.STANDARD,
        name: str = "",
        metadata: str = "",
    ) -> JoinResult:
        body = JoinRequest(identity=identity, kind=kind, name=name, metadata=metadata)
        return self._call("POST", _room(room, "join"), JoinResult, body)

    def leave(self, room: str, *, sid: str | None = None, identity: str | None = None) -> LeaveResult:
        """Exactly one of ``sid`` or ``identity`` (every connection of that identity leaves)."""
        return self._call("POST", _room(room, "leave"), LeaveResult, {"sid": sid, "identity": identity})

    def refresh(self, room: str, identity: str) -> RefreshResult:
        return self._call("POST", _room(room, "refresh"), RefreshResult, RefreshRequest(identity=identity))

    def faults(self) -> WebhookFaults:
        return self._call("GET", "/sim/faults", WebhookFaults)

    def set_faults(self, faults: WebhookFaults) -> WebhookFaults:
        return self._call("PUT", "/sim/faults", WebhookFaults, faults)

    # --- worker API -------------------------------------------------------------------------------

    def register_worker(self, agent_name: str, slots: int = 1, task_arn: str | None = None) -> str:
        body = RegisterWorker(agent_name=agent_name, slots=slots, task_arn=task_arn)
        return self._call("POST", "/sim/workers", Registered, body).worker_id

    def messages(self, worker_id: str, wait: float = 0.0) -> list[WorkerMessage]:
        """Assignments and terminations since the last call, waiting up to ``wait`` s for one."""
        path = f"/sim/workers/{quote(worker_id, safe='')}/messages?wait={wait:g}"
        return self._call("GET", path, WorkerMessages, timeout=self._timeout + wait).messages

    def end_job(self, worker_id: str, job_id: str, status: str = "success") -> JobEnded:
        path = f"/sim/workers/{quote(worker_id, safe='')}/jobs/{quote(job_id, safe='')}/end"
        return self._call("POST", path, JobEnded, {"status": status})

    def unregister_worker(self, worker_id: str) -> list[str]:
        """The worker goes; returns the jobs that ended with it."""
        path = f"/sim/workers/{quote(worker_id, safe='')}"
        return self._call("DELETE", path, Unregistered).jobs_ended

    # --- the call ---------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        answer: type[Model],
        body: BaseModel | dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Model:
        data = None
        if isinstance(body, BaseModel):
            data = body.model_dump_json().encode()
        elif body is not None:
            data = json.dumps({key: value for key, value in body.items() if value is not None}).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=timeout or self._timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise _refusal(error.code, error.read()) from error
        except OSError as error:
            raise SimulatorError(0, f"cannot reach the LiveKit simulator at {self.url}: {error}") from error
        try:
            return answer.model_validate_json(payload)
        except ValidationError as error:
            raise SimulatorError(200, f"unexpected answer from {self.url}{path}: {error}") from error


def _room(room: str, action: str) -> str:
    return f"/sim/rooms/{quote(room, safe='')}/{action}"


def _refusal(status: int, payload: bytes) -> SimulatorError:
    try:
        error = ApiError.model_validate_json(payload)
    except ValidationError:
        return SimulatorError(status, f"HTTP {status}: {payload.decode('utf-8', 'replace')[:300]}")
    return SimulatorError(status, error.error, {item.field: item.reason for item in error.fields})
