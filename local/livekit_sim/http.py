"""The simulator's own HTTP API beside Twirp, JSON in and out.

Control endpoint (what a person or a scripted session does to LiveKit):

    GET  /sim/state                   SimState
    POST /sim/rooms/{room}/join       JoinRequest -> 201 JoinResult (opens the room if needed)
    POST /sim/rooms/{room}/leave      LeaveRequest (sid or identity) -> LeaveResult
    POST /sim/rooms/{room}/refresh    RefreshRequest -> RefreshResult (new sid joins, old leaves)
    GET  /sim/faults, PUT /sim/faults WebhookFaults

Worker API (for local lightweight agent workers; real livekit-agents workers speak a WebSocket
protocol this does not implement):

    POST   /sim/workers                               RegisterWorker -> 201 Registered
    GET    /sim/workers/{worker}/messages?wait=S      WorkerMessages: long poll, up to 30 s
    POST   /sim/workers/{worker}/jobs/{job}/end       EndJob -> JobEnded
    DELETE /sim/workers/{worker}                      Unregistered (its jobs fail)

A body that is not JSON is a 400, one that breaks a model's rules a 422 naming the fields (as
the stack's API answers), an unknown participant, worker, job or route a 404: always ApiError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from local.livekit_sim.models import (
    ApiError,
    EndJob,
    FieldError,
    JobEnded,
    JoinRequest,
    JoinResult,
    LeaveRequest,
    LeaveResult,
    RefreshRequest,
    RefreshResult,
    Registered,
    RegisterWorker,
    SimState,
    Unregistered,
    WebhookFaults,
    WorkerMessages,
)
from local.livekit_sim.webhooks import WebhookSender
from local.livekit_sim.world import SimulatedLiveKit, UnknownJob, UnknownParticipant, UnknownWorker

MAX_WAIT_SECONDS = 30.0
Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Refused(Exception):
    def __init__(self, status: int, error: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(error)
        self.answer = _json(ApiError(error=error, fields=fields or []), status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is an ApiError, whichever route (or none) it came from."""
    try:
        return await handler(request)
    except _Refused as refused:
        return refused.answer
    except (UnknownParticipant, UnknownWorker, UnknownJob) as missing:
        return _json(ApiError(error=str(missing.args[0])), 404)
    except web.HTTPNotFound:
        return _json(ApiError(error=f"no route {request.method} {request.path}"), 404)
    except web.HTTPMethodNotAllowed as refused:
        return _json(ApiError(error=f"{request.method} not allowed on {request.path}"), refused.status)


class ControlApi:
    def __init__(
        self, world: SimulatedLiveKit, webhooks: WebhookSender, state: Callable[[], SimState]
    ) -> None:
        self._world = world
        self._webhooks = webhooks
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/sim/state", self._get_state)
        app.router.add_post("/sim/rooms/{room}/join", self._join)
        app.router.add_post("/sim/rooms/{room}/leave", self._leave)
        app.router.add_post("/sim/rooms/{room}/refresh", self._refresh)
        app.router.add_get("/sim/faults", self._get_faults)
        app.router.add_put("/sim/faults", self._put_faults)

    async def _get_state(self, _request: web.Request) -> web.Response:
        return _json(self._state())

    async def _join(self, request: web.Request) -> web.Response:
        body = await _body(request, JoinRequest)
        live, participant = self._world.join(
            request.match_info["room"], body.identity, body.kind, body.name, body.metadata
        )
        return _json(JoinResult(room=live.name, room_sid=live.sid, participant=participant), 201)

    async def _leave(self, request: web.Request) -> web.Response:
        body = await _body(request, LeaveRequest)
        room = request.match_info["room"]
        left = self._world.leave(room, sid=body.sid, identity=body.identity)
        return _json(LeaveResult(room=room, left=left))

    async def _refresh(self, request: web.Request) -> web.Response:
        body = await _body(request, RefreshRequest)
        room = request.match_info["room"]
        joined, left = self._world.refresh(room, body.identity)
        return _json(RefreshResult(room=room, joined=joined, left=left))

    async def _get_faults(self, _request: web.Request) -> web.Response:
        return _json(self._webhooks.faults)

    async def _put_faults(self, request: web.Request) -> web.Response:
        self._webhooks.set_faults(await _body(request, WebhookFaults))
        return _json(self._webhooks.faults)


class WorkerApi:
    def __init__(self, world: SimulatedLiveKit) -> None:
        self._world = world
        self._wakeups: dict[str, asyncio.Event] = {}
        self._closing = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/sim/workers", self._register)
        app.router.add_get("/sim/workers/{worker}/messages", self._messages)
        app.router.add_post("/sim/workers/{worker}/jobs/{job}/end", self._end_job)
        app.router.add_delete("/sim/workers/{worker}", self._unregister)
        app.on_shutdown.append(self._release_polls)

    def wake(self, worker_id: str) -> None:
        """On the loop: a waiting poll of ``worker_id`` looks again."""
        if event := self._wakeups.get(worker_id):
            event.set()

    async def _register(self, request: web.Request) -> web.Response:
        body = await _body(request, RegisterWorker)
        worker_id = self._world.register_worker(body.agent_name, body.slots, body.task_arn)
        return _json(Registered(worker_id=worker_id), 201)

    async def _messages(self, request: web.Request) -> web.Response:
        worker_id = request.match_info["worker"]
        deadline = asyncio.get_running_loop().time() + _wait_seconds(request)
        while True:
            wakeup = self._wakeups.setdefault(worker_id, asyncio.Event())
            wakeup.clear()
            messages = self._world.take_messages(worker_id)
            remaining = deadline - asyncio.get_running_loop().time()
            if messages or remaining <= 0 or self._closing:
                return _json(WorkerMessages(messages=messages))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wakeup.wait()

    async def _end_job(self, request: web.Request) -> web.Response:
        body = await _body(request, EndJob)
        job_id = request.match_info["job"]
        status = self._world.end_job(request.match_info["worker"], job_id, body.status)
        return _json(JobEnded(job_id=job_id, status=status))

    async def _unregister(self, request: web.Request) -> web.Response:
        worker_id = request.match_info["worker"]
        ended = self._world.unregister_worker(worker_id)
        self._wakeups.pop(worker_id, None)
        return _json(Unregistered(worker_id=worker_id, jobs_ended=ended))

    async def _release_polls(self, _app: web.Application) -> None:
        """Shutting down: waiting polls answer now instead of holding the server up."""
        self._closing = True
        for event in self._wakeups.values():
            event.set()


async def _body(request: web.Request, model: type[Model]) -> Model:
    try:
        data = await request.json()
    except ValueError as error:
        raise _Refused(400, f"body is not JSON: {error}") from error
    try:
        return model.model_validate(data)
    except ValidationError as error:
        fields = [
            FieldError(field=".".join(str(part) for part in item["loc"]) or "body", reason=item["msg"])
            for item in error.errors()
        ]
        raise _Refused(422, f"invalid {model.__name__}", fields) from error


def _wait_seconds(request: web.Request) -> float:
    raw = request.query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise _Refused(400, f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}, not {raw!r}")
    return wait


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")
