"""Everything the e2e tier runs, started in order and stopped in reverse: the webhook gate, the real
livekit-server, the local stack (moto, the functions, the timer poller, the sweeper, the runner)
with the real agent worker (``AGENT_PIPELINE=echo``) for every agent task, and WebRTC humans.

It runs inside the namespace :mod:`local.e2e.netns` makes: the server binds the namespace's
address, the stack and moto listen on its loopback, nothing reaches anything outside.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import boto3
from livekit import api

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.room import Room
from control_plane.settings import Settings
from control_plane.worker_protocol import WorkerRecord, WorkerStatus
from local.e2e.gate import WebhookGate
from local.e2e.humans import EventLoop, Human, token
from local.e2e.netns import NODE_IP_ENV
from local.livekit_server import (
    DEV_API_KEY,
    DEV_API_SECRET,
    LiveKitServer,
    ServerConfig,
    ServerNotFound,
    find_server,
    missing_reason,
)
from local.stack.session import DevSession, RealLiveKit
from local.stack.stack import StackOptions
from local.stack.timeline import Timeline

T = TypeVar("T")

STACK_PORT = 8787
"""The namespace is private: a fixed port is always free, and the server's config names it."""
SERVER_HTTP_PORT, SERVER_RTC_TCP_PORT, SERVER_RTC_UDP_PORT = 7880, 7881, 7882
"""livekit-server's ports in the namespace (its usual ones)."""
KEYLESS_AGENT = {"AGENT_PIPELINE": "echo"}
METRICS_ON = {"POWERTOOLS_METRICS_DISABLED": "false"}
"""The functions' EMF lines go to the stack's ``functions.log`` (:meth:`World.metric` reads them)."""
FAST_WORKERS = {"HEARTBEAT_SECONDS": "1", "DRAIN_TIMEOUT_SECONDS": "3"}


def eventually(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """The first truthy answer of ``probe``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def always(what: str, probe: Callable[[], bool], seconds: float, every: float = 0.2) -> None:
    """``probe`` holds at every look for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not probe():
            raise AssertionError(f"not always: {what}")
        time.sleep(every)


@dataclass(frozen=True)
class WorldOptions:
    work_dir: Path
    grace_seconds: int = 10
    sweep_interval_seconds: float = 5.0
    settings: dict[str, str] = field(default_factory=dict)
    """More settings for the functions and the workers (``WARM_TASKS``, ``CRASH_LOOP_LIMIT``…)."""
    task_stop_timeout_seconds: float = 15.0


class World:
    def __init__(self, options: WorldOptions) -> None:
        self.options = options
        # with metrics on, Powertools warns after every invocation that emitted none
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self.node_ip = os.environ.get(NODE_IP_ENV, "127.0.0.1")
        options.work_dir.mkdir(parents=True, exist_ok=True)
        self._timeline_file = (options.work_dir / "timeline.log").open("a", encoding="utf-8")
        self.timeline = Timeline(self._timeline_file)
        self.events = EventLoop()
        self._running = ExitStack()
        self._humans: list[Human] = []
        self.gate = WebhookGate(f"http://127.0.0.1:{STACK_PORT}/livekit/webhook")
        binary = find_server()
        if binary is None:
            raise ServerNotFound(missing_reason())
        config = ServerConfig(
            DEV_API_KEY,
            DEV_API_SECRET,
            webhook_urls=[self.gate.url],
            host=self.node_ip,
            port=SERVER_HTTP_PORT,
            rtc_tcp_port=SERVER_RTC_TCP_PORT,
            rtc_udp_port=SERVER_RTC_UDP_PORT,
        )
        self.server = LiveKitServer(binary, config, log_dir=options.work_dir)
        self.session: DevSession | None = None
        self.api: api.LiveKitAPI | None = None

    # --- life ------------------------------------------------------------------------------

    def start(self) -> World:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._running.callback(self._timeline_file.close)
        self._running.callback(self.events.close)
        self.gate.start()
        self._running.callback(self.gate.stop)
        self.server.start()
        self._running.callback(self.server.stop)
        stack_options = StackOptions(
            grace_seconds=self.options.grace_seconds,
            sweep_interval_seconds=self.options.sweep_interval_seconds,
            port=STACK_PORT,
            log_dir=self.options.work_dir / "stack",
            task_stop_timeout_seconds=self.options.task_stop_timeout_seconds,
            settings=KEYLESS_AGENT | FAST_WORKERS | METRICS_ON | self.options.settings,
        )
        livekit = RealLiveKit(self.server.url, DEV_API_KEY, DEV_API_SECRET)
        self.session = DevSession(stack_options, self.timeline, livekit=livekit)
        self.session.start()
        self._running.callback(self.session.stop)
        self.api = self.events.run(_api(self.server.http_url))
        self._running.callback(lambda: self.events.run(self.api.aclose()) if self.api else None)
        self._running.callback(self._disconnect_all)

    def stop(self) -> None:
        self._running.close()

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- humans ----------------------------------------------------------------------------

    def human(self, room: str, identity: str) -> Human:
        """A human connected to ``room`` with a token of its own, publishing a tone."""
        person = Human(self.server.url, room, identity, token(DEV_API_KEY, DEV_API_SECRET, room, identity))
        self._humans.append(person)
        return self.events.run(person.connect())

    def human_with(self, room: str, identity: str, participant_token: str) -> Human:
        person = Human(self.server.url, room, identity, participant_token)
        self._humans.append(person)
        return self.events.run(person.connect())

    def leave(self, person: Human) -> None:
        self.events.run(person.disconnect())

    def _disconnect_all(self) -> None:
        for person in self._humans:
            try:
                self.events.run(person.disconnect(), timeout=10)
            except Exception:  # already gone, or the server is: nothing to undo
                continue

    # --- LiveKit's own state ---------------------------------------------------------------

    def create_room(self, name: str, departure_timeout: int | None = None) -> None:
        """The room as an app creates it; by default as this project asks (grace + margin)."""
        timeout = departure_timeout if departure_timeout is not None else self.departure_timeout
        request = api.CreateRoomRequest(name=name, departure_timeout=timeout, empty_timeout=timeout)
        self.events.run(self._lk.room.create_room(request))

    @property
    def departure_timeout(self) -> int:
        margin = Settings.model_fields["room_departure_margin_seconds"].default
        return int(self.options.grace_seconds + margin)

    def delete_room(self, name: str) -> None:
        self.events.run(self._lk.room.delete_room(api.DeleteRoomRequest(room=name)))

    def agents_in(self, room: str) -> list[str]:
        """Agent identities LiveKit lists in ``room`` (RoomService)."""
        return sorted(
            p.identity for p in self._participants(room) if p.kind == api.ParticipantInfo.Kind.AGENT
        )

    def humans_in(self, room: str) -> list[str]:
        return sorted(
            p.identity for p in self._participants(room) if p.kind != api.ParticipantInfo.Kind.AGENT
        )

    def _participants(self, room: str) -> list[api.ParticipantInfo]:
        try:
            answer = self.events.run(self._lk.room.list_participants(api.ListParticipantsRequest(room=room)))
        except api.TwirpError as error:
            if error.code == "not_found":
                return []
            raise
        return list(answer.participants)

    def room_exists(self, room: str) -> bool:
        answer = self.events.run(self._lk.room.list_rooms(api.ListRoomsRequest(names=[room])))
        return bool(answer.rooms)

    def dispatches(self, room: str) -> list[api.AgentDispatch]:
        """AgentDispatchService's dispatches of our agent for ``room``. LiveKit also lists one
        with an empty ``agent_name`` in every room (automatic dispatch, for workers registered
        without a name): not ours, left out."""
        try:
            listed = self.events.run(self._lk.agent_dispatch.list_dispatch(room))
        except api.TwirpError as error:
            # a closed room's dispatch calls find no room node: 503 once psrpc gives up
            if error.code == "not_found" or (error.code == "unavailable" and not self.room_exists(room)):
                return []
            raise
        return [dispatch for dispatch in listed if dispatch.agent_name == self.agent_name]

    @property
    def agent_name(self) -> str:
        return str(self.options.settings.get("AGENT_NAME", Settings.model_fields["agent_name"].default))

    @property
    def _lk(self) -> api.LiveKitAPI:
        assert self.api is not None, "start the world first"
        return self.api

    # --- the stack ---------------------------------------------------------------------------

    @property
    def stack(self) -> DevSession:
        assert self.session is not None, "start the world first"
        return self.session

    def _store(self) -> DynamoDBStore:
        assert self.stack.stack is not None
        aws = self.stack.stack.aws
        client = boto3.client(
            "dynamodb", endpoint_url=aws.env.get("AWS_ENDPOINT_URL"), region_name=aws.region
        )
        return DynamoDBStore(client, aws.table_name)

    def room_record(self, room: str) -> Room | None:
        """The control plane's record of ``room`` (read from the stack's table)."""
        return self._store().get(room)

    def metric(self, name: str, **dimensions: str) -> float:
        """The sum of metric ``name`` the functions emitted so far (with these dimensions), read
        from the CloudWatch EMF lines in the stack's log, as CloudWatch would count them."""
        total = 0.0
        with (self.options.work_dir / "stack" / "functions.log").open(encoding="utf-8") as lines:
            for line in lines:
                if f'"{name}"' not in line or not line.startswith("{"):
                    continue
                try:
                    emf = json.loads(line)
                except ValueError:
                    continue
                if "_aws" in emf and all(emf.get(key) == value for key, value in dimensions.items()):
                    values = emf.get(name, [])
                    total += sum(values) if isinstance(values, list) else float(values)
        return total

    def ready_workers(self) -> list[WorkerRecord]:
        """Workers that told the control plane they are registered with LiveKit and may take a
        job, with a slot neither hosting nor held for a room."""
        jobs_per_task = int(self.options.settings.get("JOBS_PER_TASK", "1"))
        return [
            worker
            for worker in self._store().live_workers()
            if worker.status is WorkerStatus.READY
            and not worker.draining
            and worker.free_slots(jobs_per_task)
        ]

    def room_state(self, room: str) -> str | None:
        record = self.room_record(room)
        return None if record is None else record.state.value

    def worker_pids(self) -> dict[str, int]:
        """Task ARN to the agent worker's process id, for every task still running."""
        runner = self.stack.stack.runner if self.stack.stack else None
        assert runner is not None
        return runner.pids()

    def kill_worker(self, task_arn: str) -> None:
        os.kill(self.worker_pids()[task_arn], signal.SIGKILL)

    def tasks_started(self) -> int:
        runner = self.stack.stack.runner if self.stack.stack else None
        assert runner is not None
        return runner.started()

    def with_settings(self, **settings: str) -> WorldOptions:
        return replace(self.options, settings=self.options.settings | settings)


async def _api(url: str) -> api.LiveKitAPI:
    return api.LiveKitAPI(url, DEV_API_KEY, DEV_API_SECRET)
