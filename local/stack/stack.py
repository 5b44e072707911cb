"""The control plane on one machine: the template's functions behind their triggers, with agent
tasks as local processes.

:class:`LocalStack` sets the functions' environment (the variables the SAM template sets, pointed
at local resources), serves the HTTP API's routes, polls the timer queue, runs the sweeper on its
schedule, delivers the runner's task state changes, watches the table for the timeline and the
live page, and undoes all of it on :meth:`LocalStack.stop`. AWS (moto or an account) and LiveKit
(the simulator or a real server) are given to it; :mod:`local.stack.session` starts those too.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import boto3

from control_plane import composition
from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.settings import Settings
from local.stack.aws import TIMER_FUNCTION, AwsResources
from local.stack.functions import Functions, environment
from local.stack.http_api import LocalHttpApi
from local.stack.runner import LocalRunner, WorkerProgram
from local.stack.template import Template, load
from local.stack.timeline import Timeline, TimelineLogHandler
from local.stack.triggers import EventDelivery, QueuePoller, Schedule
from local.stack.watch import TableWatcher
from local.stack.wiring import use_runner
from local.stack.workers import AgentWorkerProgram, SimWorkerProgram

CLUSTER = "local"
SWEEPER_FUNCTION = "handlers.sweeper"
TASK_EVENTS_FUNCTION = "handlers.task_events"
WEBHOOK_PATH = "/livekit/webhook"
# Defaults for a laptop: an agent worker beats every 5 s (15 s in ECS) and has 5 s to drain.
WORKER_DEFAULTS = {"HEARTBEAT_SECONDS": "5", "DRAIN_TIMEOUT_SECONDS": "5"}
# Settings the functions share with the agent worker (the template gives both the same values).
SHARED_SETTINGS = ("AGENT_NAME", "GRACE_PERIOD_SECONDS", "SLOTS_PER_TASK", "JOBS_PER_TASK")


@dataclass(frozen=True)
class LiveKitTarget:
    url: str
    """What the control plane and the agent workers call (``LIVEKIT_URL``)."""
    api_key: str
    api_secret: str
    simulator_url: str | None = None
    """The simulator's ``/sim`` API (its worker API for local workers); None: a real server."""


@dataclass(frozen=True)
class StackOptions:
    grace_seconds: int | None = None
    """``GRACE_PERIOD_SECONDS``; None keeps the environment's (60 s by default)."""
    sweep_interval_seconds: float | None = None
    """None: the template's schedule (every minute)."""
    host: str = "127.0.0.1"
    port: int = 0
    task_stop_timeout_seconds: float = 10.0
    """SIGKILL this long after SIGTERM (the task definition's ``stopTimeout``, 120 s in ECS)."""
    log_dir: Path = Path(tempfile.gettempdir()) / "livekit-local-stack"
    settings: dict[str, str] = field(default_factory=dict)
    """More variables for the functions and the workers (``WARM_TASKS``, ``SLOTS_PER_TASK``, …)."""


class LocalStack:
    def __init__(self, aws: AwsResources, options: StackOptions, timeline: Timeline) -> None:
        self.aws = aws
        self.options = options
        self.timeline = timeline
        self._template: Template = load()
        self._http = LocalHttpApi(
            self._template.routes(),
            self._invoke,
            timeline,
            page=resources.files("local.stack").joinpath("page.html").read_bytes(),
            state=self.state,
            host=options.host,
            port=options.port,
        )
        self._functions: Functions | None = None
        self._started = ExitStack()
        self.runner: LocalRunner | None = None
        self.watcher: TableWatcher | None = None

    # --- URLs -----------------------------------------------------------------------------

    def listen(self) -> str:
        """Bind the HTTP API (before LiveKit starts, which needs the webhook URL); its base URL."""
        self._http.start()
        return self.api_url

    @property
    def api_url(self) -> str:
        return self._http.url + "/"

    @property
    def webhook_url(self) -> str:
        return self._http.url + WEBHOOK_PATH

    @property
    def port(self) -> int:
        return self._http.port

    # --- life -----------------------------------------------------------------------------

    def start(self, livekit: LiveKitTarget) -> LocalStack:
        try:
            self._start(livekit)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, livekit: LiveKitTarget) -> None:
        started = self._started
        self.options.log_dir.mkdir(parents=True, exist_ok=True)
        log = started.enter_context((self.options.log_dir / "functions.log").open("a", encoding="utf-8"))
        env = self._functions_env(livekit)
        started.enter_context(environment(env))
        started.callback(setattr, boto3, "DEFAULT_SESSION", boto3.DEFAULT_SESSION)
        boto3.setup_default_session()  # the functions' clients see this environment, nothing older

        functions = Functions(log, TimelineLogHandler(self.timeline))
        started.callback(functions.close)
        modules = {route.module for route in self._template.routes()}
        functions.load(*sorted(modules | {TIMER_FUNCTION, SWEEPER_FUNCTION, TASK_EVENTS_FUNCTION}))
        self._functions = functions
        started.callback(setattr, self, "_functions", None)

        events = EventDelivery(
            TASK_EVENTS_FUNCTION,
            self._template.timeout_seconds(TASK_EVENTS_FUNCTION),
            self._invoke,
            self.timeline,
        )
        self.runner = LocalRunner(
            self._program(livekit, env),
            events.send,
            self.timeline,
            self.options.log_dir,
            cluster=CLUSTER,
            stop_timeout_seconds=self.options.task_stop_timeout_seconds,
            region=self.aws.region,
        )
        started.callback(use_runner(self.runner))
        composition.livekit_credentials()  # the secret is readable: fail here, not at a webhook

        session = boto3.Session()
        mapping = self._template.queue_mapping(TIMER_FUNCTION)
        interval, timeout = self._template.schedule_seconds(SWEEPER_FUNCTION)
        self.watcher = TableWatcher(
            DynamoDBStore(session.client("dynamodb"), self.aws.table_name),
            self.runner.running,
            self.timeline,
            composition.settings(),
        )
        # Stopped in reverse: the schedule and the poller, then the tasks, then what reports them.
        for part in (events, self.watcher):
            part.start()
            started.callback(part.stop)
        started.callback(self.runner.close)
        for trigger in (
            QueuePoller(
                session.client("sqs"),
                self.aws.queue_url,
                self.aws.queue_arn,
                mapping,
                self._invoke,
                self.timeline,
            ),
            Schedule(
                SWEEPER_FUNCTION,
                self.options.sweep_interval_seconds or interval,
                timeout,
                self._invoke,
                self.timeline,
            ),
        ):
            trigger.start()
            started.callback(trigger.stop)
        self.timeline.emit(
            "stack", f"up: webhook {self.webhook_url}, API {self.api_url}, LiveKit {livekit.url}"
        )

    def stop(self) -> None:
        """Stop everything this started, tasks included, in reverse order; safe to call twice."""
        self._http.stop()
        self._started.close()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- settings -------------------------------------------------------------------------

    def settings(self) -> Settings:
        """The functions' settings as this stack sets them (its options over the environment)."""
        overrides = dict(self.options.settings)
        if self.options.grace_seconds is not None:
            overrides["GRACE_PERIOD_SECONDS"] = str(self.options.grace_seconds)
        return Settings.model_validate({name.lower(): value for name, value in overrides.items()})

    def room_defaults(self) -> tuple[int, int]:
        """``departure_timeout`` and ``empty_timeout`` for rooms a LiveKit started for this stack
        opens on its own (a client joining with its own token, ``lkctl sim join``): what the join
        API gives the rooms it creates, so LiveKit never closes one before its grace deadline."""
        timeout = self.settings().departure_timeout
        return timeout, timeout

    # --- what the page shows --------------------------------------------------------------

    def state(self, room: str | None = None) -> dict[str, Any]:
        """``GET /_local/state`` (``?room=NAME`` adds that room's detail)."""
        if self.watcher is None:
            return {"rooms": [], "workers": [], "tasks": [], "timeline": self.timeline.recent()}
        snapshot = self.watcher.snapshot(room)
        snapshot["grace_seconds"] = composition.settings().grace_period_seconds
        snapshot["urls"] = {"webhook_url": self.webhook_url, "api_url": self.api_url}
        snapshot["sweep_interval_seconds"] = (
            self.options.sweep_interval_seconds or (self._template.schedule_seconds(SWEEPER_FUNCTION)[0])
        )
        return snapshot

    # --- internals ------------------------------------------------------------------------

    def _invoke(self, module: str, event: dict[str, Any], timeout_seconds: float) -> Any:
        if self._functions is None:  # listening already, still starting: the caller retries a 5xx
            raise RuntimeError("the local stack is still starting")
        return self._functions.invoke(module, event, timeout_seconds)

    def _functions_env(self, livekit: LiveKitTarget) -> dict[str, str]:
        """What the template's ``Globals`` give every function, for these resources."""
        env = self.aws.env | {
            "TABLE_NAME": self.aws.table_name,
            "TIMER_QUEUE_URL": self.aws.queue_url,
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_SECRET_ARN": self.aws.secret_arn,
            "ECS_CLUSTER": CLUSTER,
            "TASK_DEFINITION": "local-agent",
            "AGENT_TASK_ROLE_ID": "",  # every local process shares one identity: no sender check
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "LiveKitAgentLifecycle",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"),
        }
        if self.options.grace_seconds is not None:
            env["GRACE_PERIOD_SECONDS"] = str(self.options.grace_seconds)
        return env | self.options.settings

    def _program(self, livekit: LiveKitTarget, functions_env: dict[str, str]) -> WorkerProgram:
        shared = {name: functions_env.get(name, os.environ.get(name)) for name in SHARED_SETTINGS}
        env = (
            self.aws.env
            | WORKER_DEFAULTS
            | {name: value for name, value in shared.items() if value is not None}
            | {
                "TABLE_NAME": self.aws.table_name,
                "TIMER_QUEUE_URL": self.aws.queue_url,
                "AGENT_TASK_ROLE_ID": "",  # as the functions': records keyed TASK#:<task id>
            }
            | self.options.settings
        )
        if livekit.simulator_url is not None:
            return SimWorkerProgram(livekit.simulator_url, env)
        return AgentWorkerProgram(livekit.url, livekit.api_key, livekit.api_secret, env)
