"""Cold start of every Lambda function: its import against ``import boto3``, its first request
against a warm one, and its peak memory (issue 22).

Each run starts, per function, two fresh interpreters one after the other, so the machine's load
hits both alike: ``python -c "import boto3"`` (the floor any function here pays) and the
function's own child, shaped like a Lambda execution environment of the deployed template:
``LAMBDA_TASK_ROOT`` set (Powertools Tracer on, as with ``Tracing: Active``, and init code runs),
only the Lambda package installed (a venv of functions/requirements.txt on Python 3.12, the
template's runtime). The child imports the handler module (``import``: Lambda's Init phase less
the runtime's own start), handles its first event end to end against a moto server and a fake
LiveKit in this process (``first``), then a second event of the same kind (``warm``), and reports
its peak RSS. Functions with SnapStart get a third child that runs the registered SnapStart hooks
after the import (``snapshot``, ``restore``) and then the first event (``restored_first``).

The events, each the path a cold container meets most: webhook, a new room's first signed
``participant_joined`` (secret read, signature check, DynamoDB writes, ECS ``RunTask``); api,
``POST /rooms/{room}/join`` for a new room (LiveKit ``CreateRoom``, DynamoDB, ``RunTask``, token);
timer, a ``WorkerReady`` message (LiveKit dispatch); sweeper, one scheduled sweep; task_events, a
``RUNNING`` state change of an agent task.

Goals, on CPU time (steady on a busy machine, and what Lambda meters out by memory size; wall
time beside it): import ≤ 1.5 x ``import boto3``, median of the paired ratios; first request ≤
2 x a warm one, i.e. import + first ≤ import + 2 x warm. A missed goal is printed with by how much
and why: the modules the function imports beyond boto3's, and what the first request still
imports. Figures go to ``bench/results/cold_start.json``, which README.md and docs/cold-start.md
quote (tests/unit/test_docs.py holds them to it).

Run: ``.venv/bin/python bench/cold_start.py [--runs N] [--only webhook,api] [--tree other/functions]``
from the repo root (``--tree`` repeated measures several function trees run by run, e.g. the
commit before a change against this one). ``make bench-smoke``: one run, in this interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

if TYPE_CHECKING:
    from local.fixtures import LocalAws

IMPORT_GOAL = 1.5  # x import boto3, CPU
FIRST_GOAL = 2.0  # x a warm request, CPU
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
# Own tables, so earlier runs' rooms do not change what a first and a warm request find: the
# sweeper's two sweeps find the same idle table, the timer's first WorkerReady finds no room
# of another run waiting for a slot (and would give it the slot the warm one's room needs).
OWN_TABLES = {"handlers.sweeper": "cold-start-sweep", "handlers.timer": "cold-start-timer"}

BOTO3_CHILD = """
import json, resource, sys, time
started = time.perf_counter(), time.process_time()
import boto3
done = time.perf_counter(), time.process_time()
print(json.dumps({"import_ms": (done[0] - started[0]) * 1000, "import_cpu_ms": (done[1] - started[1]) * 1000,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# Runs in the fresh interpreter: nothing but the standard library before the timed import.
CHILD = """
import importlib, json, resource, sys, time, types

with open(sys.argv[1], encoding="utf-8") as f:
    spec = json.load(f)

class Context:
    function_name = spec["function_name"]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + spec["function_name"]
    aws_request_id = "cold-start-bench"

    def __init__(self):
        self.started = time.monotonic()

    def get_remaining_time_in_millis(self):
        return int((spec["timeout"] - (time.monotonic() - self.started)) * 1000)

hooks = {"before": [], "after": []}
if spec["restored"]:  # what the Lambda runtime's snapshot_restore_py does with registered hooks
    stand_in = types.ModuleType("snapshot_restore_py")
    def register(kind):
        def add(func, *args, **kwargs):
            hooks[kind].append((func, args, kwargs))
            return func
        return add
    stand_in.register_before_snapshot = register("before")
    stand_in.register_after_restore = register("after")
    sys.modules["snapshot_restore_py"] = stand_in

def now():
    return time.perf_counter(), time.process_time()

marks = {"start": now()}
module = importlib.import_module(spec["module"])
marks["imported"] = now()
for func, args, kwargs in hooks["before"]:
    func(*args, **kwargs)
marks["snapshotted"] = now()
for func, args, kwargs in hooks["after"]:
    func(*args, **kwargs)
marks["restored"] = now()
loaded = set(sys.modules)
first = module.handler(spec["events"][0], Context())
marks["first"] = now()
first_imports = sorted({name.split(".")[0] for name in set(sys.modules) - loaded})
warm = module.handler(spec["events"][1], Context())
marks["warm"] = now()
spans = {"import": ("start", "imported"), "snapshot": ("imported", "snapshotted"),
         "restore": ("snapshotted", "restored"), "first": ("restored", "first"), "warm": ("first", "warm")}
figures = {}
for name, (begin, end) in spans.items():
    figures[name + "_ms"] = (marks[end][0] - marks[begin][0]) * 1000
    figures[name + "_cpu_ms"] = (marks[end][1] - marks[begin][1]) * 1000
figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump({"figures": figures, "answers": [first, warm], "first_imports": first_imports}, f, default=str)
"""


@dataclass(frozen=True)
class Function:
    """One Lambda function of the template, as the bench drives it."""

    module: str
    name: str  # AWS_LAMBDA_FUNCTION_NAME and POWERTOOLS_SERVICE_NAME
    timeout: float  # the template's Timeout
    snapstart: bool  # measured restored too
    answered: Callable[[Any], bool]  # a handled event, as the handler answers it


def _http_ok(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("statusCode") == 200


FUNCTIONS = {
    "webhook": Function("handlers.webhook", "livekit-webhook", 15, True, _http_ok),
    "api": Function("handlers.api", "livekit-api", 29, True, _http_ok),
    "timer": Function("handlers.timer", "livekit-timer", 30, False, lambda a: a == {"batchItemFailures": []}),
    "sweeper": Function("handlers.sweeper", "livekit-sweeper", 55, False, lambda a: isinstance(a, dict)),
    "task_events": Function(
        "handlers.task_events", "livekit-task-events", 30, False, lambda a: a.get("outcome") != "malformed"
    ),
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lambda_env(resources: dict[str, str], tree: Path, function: Function) -> dict[str, str]:
    """What Lambda and the template give the function; no PYTHON* variables leak in from here."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env = {
        **keep,
        **resources,
        "PYTHONPATH": str(tree),
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "LAMBDA_TASK_ROOT": str(tree),
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{_free_port()}",  # UDP, nobody listening
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "POWERTOOLS_SERVICE_NAME": function.name,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "MAX_TASKS": "100000",  # every run launches tasks in moto, which never stops them
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    if function.module in OWN_TABLES:
        env["TABLE_NAME"] = OWN_TABLES[function.module]
    return env


class Events:
    """Two events of the same kind per function and run: the first request and the warm one."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws

    def webhook(self, tag: str) -> list[dict[str, Any]]:
        from local.fixtures import http_api_event, signed_headers, webhook_body

        livekit = self.aws.livekit
        events = []
        for n in (1, 2):
            room = f"wh-{tag}-{n}"
            body = webhook_body("participant_joined", room=room, room_sid=f"RM_{room}", sid=f"PA_{room}")
            events.append(http_api_event(body, signed_headers(body, livekit.api_key, livekit.api_secret)))
        return events

    def api(self, tag: str) -> list[dict[str, Any]]:
        from local.fixtures import http_api_event

        events = []
        for n in (1, 2):
            body = json.dumps({"identity": "alice"}).encode()
            headers = {"content-type": "application/json"}
            path = f"/rooms/api-{tag}-{n}/join"
            events.append(http_api_event(body, headers, path=path, base64_encoded=False))
        return events

    def timer(self, tag: str) -> list[dict[str, Any]]:
        """A WorkerReady each for two rooms whose agent task has just registered its worker."""
        from control_plane import composition
        from control_plane.worker_protocol import WorkerReady, WorkerRecord, WorkerStatus
        from local.fixtures import sqs_event

        self._drain_timer_queue()
        events = []
        with self._table(OWN_TABLES["handlers.timer"]):
            store = composition.store()
            for n in (1, 2):
                room = f"timer-{tag}-{n}"
                self._join(room)
                tracked = store.get(room)
                assert tracked is not None and tracked.agent is not None and tracked.agent.task_arn
                task_arn = tracked.agent.task_arn
                # What the agent container does once LiveKit registered its worker.
                self.aws.livekit.state.register_worker("voice-agent")
                worker = WorkerRecord(
                    task_arn=task_arn,
                    status=WorkerStatus.READY,
                    capacity=1,
                    heartbeat_at=time.time(),
                    launched_for=room,
                )
                store.put_worker(worker)
                body = WorkerReady(task_arn=task_arn, room=room).model_dump_json()
                self.aws.client("sqs").send_message(QueueUrl=self.aws.queue_url, MessageBody=body)
                events.append(sqs_event(self.aws.queue_url, max_messages=1))
                assert len(events[-1]["Records"]) == 1, events[-1]
        return events

    @contextlib.contextmanager
    def _table(self, name: str) -> Iterator[None]:
        """The handlers in this process use table ``name`` meanwhile."""
        from control_plane import composition

        saved = os.environ["TABLE_NAME"]
        os.environ["TABLE_NAME"] = name
        composition.reset()
        try:
            yield
        finally:
            os.environ["TABLE_NAME"] = saved
            composition.reset()

    def sweeper(self, tag: str) -> list[dict[str, Any]]:
        from local.fixtures import scheduler_event

        return [scheduler_event(), scheduler_event()]

    def task_events(self, tag: str) -> list[dict[str, Any]]:
        """Each agent task of two new rooms reported RUNNING, as EventBridge delivers it."""
        from control_plane.adapters.dynamodb_store import DynamoDBStore
        from local.fixtures import TABLE, ecs_task_state_change

        store = DynamoDBStore(self.aws.client("dynamodb"), TABLE)
        events = []
        for n in (1, 2):
            room = f"ecs-{tag}-{n}"
            self._join(room)
            tracked = store.get(room)
            assert tracked is not None and tracked.agent is not None and tracked.agent.task_arn
            agent = tracked.agent
            events.append(
                ecs_task_state_change(
                    str(agent.task_arn), "RUNNING", 2, room=room, launch_token=agent.launch_token
                )
            )
        return events

    def _join(self, room: str) -> None:
        """A human joins a new room (through the webhook, in this process): its agent is launched."""
        from handlers import webhook
        from local.fixtures import LambdaContext, http_api_event, signed_headers, webhook_body

        livekit = self.aws.livekit
        livekit.state.open_room(room)
        body = webhook_body("participant_joined", room=room, room_sid=f"RM_{room}", sid=f"PA_{room}")
        event = http_api_event(body, signed_headers(body, livekit.api_key, livekit.api_secret))
        assert webhook.handler(event, LambdaContext())["statusCode"] == 200

    def _drain_timer_queue(self) -> None:
        sqs = self.aws.client("sqs")
        while messages := sqs.receive_message(QueueUrl=self.aws.queue_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                sqs.delete_message(QueueUrl=self.aws.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _run(python: str, flags: tuple[str, ...], code: str, args: list[str], env: dict[str, str]) -> str:
    finished = subprocess.run(  # noqa: PLW1510  (the stderr is the error)
        [python, *flags, "-c", code, *args], env=env, capture_output=True, text=True
    )
    if finished.returncode:
        raise RuntimeError(f"a cold-start child failed:\n{finished.stderr}")
    return finished.stdout + finished.stderr


def _run_child(
    python: str, env: dict[str, str], function: Function, events: list[Any], restored: bool, flags=()
) -> tuple[dict[str, Any], str]:
    """One fresh interpreter running one function; its result, and its output (``-X importtime``)."""
    spec = {
        "module": function.module,
        "function_name": function.name,
        "timeout": function.timeout,
        "restored": restored,
        "events": events,
    }
    with tempfile.TemporaryDirectory() as scratch:
        spec_path, out_path = Path(scratch, "spec.json"), Path(scratch, "out.json")
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        output = _run(python, tuple(flags), CHILD, [str(spec_path), str(out_path)], {**env, "PWD": scratch})
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    for answer in result["answers"]:
        if not function.answered(answer):
            raise RuntimeError(f"{function.module} did not handle its event: {answer}")
    return result, output


def _boto3_child(python: str, env: dict[str, str]) -> dict[str, float]:
    figures: dict[str, float] = json.loads(_run(python, (), BOTO3_CHILD, [], env).splitlines()[-1])
    return figures


def import_tree(importtime: str) -> dict[str, float]:
    """Cumulative ms per module from ``-X importtime`` output."""
    rows = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        rows[name.strip()] = int(cumulative) / 1000
    return rows


def beyond_boto3(function_tree: dict[str, float], boto3_tree: dict[str, float], top: int = 12) -> list:
    """The heaviest modules a function imports that ``import boto3`` does not, as [name, ms].

    Only the outermost of nested ones: a package's own submodules are inside its figure."""
    extra = {name: ms for name, ms in function_tree.items() if name not in boto3_tree}
    outermost = {
        name: ms
        for name, ms in extra.items()
        if not any(name != other and name.startswith(other + ".") for other in extra)
    }
    ranked = sorted(outermost.items(), key=lambda row: row[1], reverse=True)[:top]
    return [[name, round(ms, 1)] for name, ms in ranked]


@contextlib.contextmanager
def _local_aws() -> Iterator[LocalAws]:
    """A moto server and a fake LiveKit in this process, provisioned as the template would be."""
    from moto.server import ThreadedMotoServer

    from local.fixtures import create_table, provision
    from local.livekit_sim import FakeLiveKitServer

    port = _free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    overrides = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MAX_TASKS": "100000",
    }
    saved = dict(os.environ)
    os.environ.update(overrides)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the handlers run here to make events
    try:
        with FakeLiveKitServer() as livekit:
            aws = provision(livekit)
            for table in OWN_TABLES.values():
                create_table(aws.client("dynamodb"), table)
            os.environ.update(aws.env)  # for the events made here, through the handlers in-process
            yield aws
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def _summary(
    function: Function,
    pairs: list[tuple[dict[str, float], dict[str, Any]]],
    restored: list[dict[str, Any]],
) -> dict[str, Any]:
    """Medians over the runs, the goals' ratios (median of each run's paired ratio) and verdicts."""
    boto3_runs = [boto3 for boto3, _ in pairs]
    runs = [child["figures"] for _, child in pairs]
    out: dict[str, Any] = {}
    for unit in ("ms", "cpu_ms"):
        out[f"boto3_import_{unit}"] = _median([b[f"import_{unit}"] for b in boto3_runs])
        for span in ("import", "first", "warm"):
            out[f"{span}_{unit}"] = _median([r[f"{span}_{unit}"] for r in runs])
        out[f"cold_path_{unit}"] = _median([r[f"import_{unit}"] + r[f"first_{unit}"] for r in runs])
        out[f"import_vs_boto3{'' if unit == 'cpu_ms' else '_wall'}"] = _median(
            [r[f"import_{unit}"] / b[f"import_{unit}"] for r, b in zip(runs, boto3_runs, strict=True)]
        )
        out[f"first_vs_warm{'' if unit == 'cpu_ms' else '_wall'}"] = _median(
            [r[f"first_{unit}"] / max(r[f"warm_{unit}"], 0.1) for r in runs]
        )
        if restored:
            for span in ("snapshot", "restore"):
                out[f"{span}_{unit}"] = _median([r["figures"][f"{span}_{unit}"] for r in restored])
            out[f"restored_first_{unit}"] = _median([r["figures"][f"first_{unit}"] for r in restored])
    out["peak_mb"] = _median([r["peak_mb"] for r in runs])
    out["boto3_peak_mb"] = _median([b["peak_mb"] for b in boto3_runs])
    out["first_request_imports"] = sorted({m for _, child in pairs for m in child["first_imports"]})
    out["import_goal_met"] = out["import_vs_boto3"] <= IMPORT_GOAL
    out["first_goal_met"] = out["first_vs_warm"] <= FIRST_GOAL
    return out


def measure(runs: int, python: str, trees: list[Path], names: list[str]) -> dict[str, Any]:
    """Figures per tree and function; trees and functions take turns in each run, so the machine's
    load hits them alike."""
    samples: dict[tuple[Path, str], tuple[list, list]] = {(t, n): ([], []) for t in trees for n in names}
    importtimes: dict[tuple[Path, str], dict[str, Any]] = {}
    with _local_aws() as aws:
        events = Events(aws)
        for run in range(runs):
            for t, tree in enumerate(trees):
                for name in names:
                    function = FUNCTIONS[name]
                    env = _lambda_env(aws.env, tree, function)
                    pairs, restored = samples[(tree, name)]
                    boto3 = _boto3_child(python, env)
                    child, _ = _run_child(python, env, function, getattr(events, name)(f"{t}-{run}"), False)
                    pairs.append((boto3, child))
                    if function.snapstart:
                        made = getattr(events, name)(f"{t}-{run}-r")
                        restored.append(_run_child(python, env, function, made, True)[0])
        boto3_tree = import_tree(_run(python, ("-X", "importtime"), BOTO3_CHILD, [], os.environ.copy()))
        for t, tree in enumerate(trees):
            for name in names:
                function = FUNCTIONS[name]
                env = _lambda_env(aws.env, tree, function)
                made = getattr(events, name)(f"{t}-importtime")
                output = _run_child(python, env, function, made, False, ("-X", "importtime"))[1]
                importtimes[(tree, name)] = {"beyond_boto3_ms": beyond_boto3(import_tree(output), boto3_tree)}
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "python": version,
        "runs": runs,
        "goals": {"import_vs_boto3": IMPORT_GOAL, "first_vs_warm": FIRST_GOAL},
        "trees": {
            _label(tree): {
                name: {**_summary(FUNCTIONS[name], *samples[(tree, name)]), **importtimes[(tree, name)]}
                for name in names
            }
            for tree in trees
        },
    }


def _label(tree: Path) -> str:
    return "functions" if tree == ROOT / "functions" else str(tree)


def report(figures: dict[str, Any]) -> list[str]:
    """Print the table per tree and, for the last tree, each goal missed: by how much, and why."""
    print(
        f"cold start per function, Python {figures['python']}, median of {figures['runs']} runs "
        "(fresh interpreters, Lambda-like env, tracing on, moto server); CPU ms (wall ms)"
    )
    missed: list[str] = []
    for label, functions in figures["trees"].items():
        print(f"\n  tree: {label}")
        print(
            f"  {'function':<12}{'import boto3':>14}{'import':>14}{'x boto3':>9}{'first':>13}"
            f"{'warm':>11}{'x warm':>8}{'restored 1st':>14}{'peak MB':>9}"
        )
        for name, f in functions.items():
            restored = (
                f"{f['restored_first_cpu_ms']:>6.0f} ({f['restored_first_ms']:>4.0f})"
                if "restored_first_cpu_ms" in f
                else ""
            )
            print(
                f"  {name:<12}{f['boto3_import_cpu_ms']:>7.0f} ({f['boto3_import_ms']:>4.0f})"
                f"{f['import_cpu_ms']:>7.0f} ({f['import_ms']:>4.0f}){f['import_vs_boto3']:>8.2f}"
                f"{f['first_cpu_ms']:>6.0f} ({f['first_ms']:>4.0f})"
                f"{f['warm_cpu_ms']:>4.0f} ({f['warm_ms']:>3.0f})"
                f"{f['first_vs_warm']:>7.1f}{restored:>14}{f['peak_mb']:>9.0f}"
            )
    print(f"\n  goals: import ≤ {IMPORT_GOAL} x import boto3; first request ≤ {FIRST_GOAL} x a warm (CPU)")
    last = list(figures["trees"].values())[-1]
    for name, f in last.items():
        if not f["import_goal_met"]:
            missed.append(f"{name} import")
            over = f["import_cpu_ms"] - IMPORT_GOAL * f["boto3_import_cpu_ms"]
            heavy = ", ".join(f"{module} {ms:.0f}" for module, ms in f["beyond_boto3_ms"][:6])
            print(
                f"  MISSED {name} import: {f['import_vs_boto3']:.2f} x boto3, {over:.0f} CPU ms over; "
                f"beyond boto3 it imports (cumulative ms, one run): {heavy}"
            )
        if not f["first_goal_met"]:
            missed.append(f"{name} first request")
            over = f["first_cpu_ms"] - FIRST_GOAL * f["warm_cpu_ms"]
            imports = ", ".join(f["first_request_imports"]) or "nothing"
            print(
                f"  MISSED {name} first request: {f['first_vs_warm']:.1f} x warm, {over:.0f} CPU ms over; "
                f"it still imports: {imports}"
            )
    return missed


MARKDOWN_HEADER = [
    "| function | `import boto3` | import | x boto3 | first request | warm request | x warm "
    "| first after restore | peak MB |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]


def markdown_rows(functions: dict[str, Any], suffix: str = "") -> list[str]:
    """The table README.md and docs/cold-start.md quote: CPU ms and ratios, one row per function."""
    rows = []
    for name, f in functions.items():
        restored = f"{f['restored_first_cpu_ms']:.0f}" if "restored_first_cpu_ms" in f else "-"
        cells = [
            f"`{name}`{suffix}",
            f"{f['boto3_import_cpu_ms']:.0f}",
            f"{f['import_cpu_ms']:.0f}",
            f"{f['import_vs_boto3']:.2f}",
            f"{f['first_cpu_ms']:.0f}",
            f"{f['warm_cpu_ms']:.0f}",
            f"{f['first_vs_warm']:.2f}",
            restored,
            f"{f['peak_mb']:.0f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


LAMBDA_VENV = ROOT / "bench" / "results" / "lambda-venv"


def _python_312() -> str | None:
    """A CPython 3.12 (the template's runtime): on PATH, or pyenv's, or None."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
    ]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def lambda_python() -> str:
    """An interpreter with only what ``sam build`` packs (functions/requirements.txt), made once.

    The project venv also holds moto, requests, cryptography...; X-Ray's ``patch_all`` and PyJWT
    import those when present, which the deployed function never does. Falls back to this
    interpreter (and says so) when no venv can be made, e.g. offline.
    """
    requirements = ROOT / "functions" / "requirements.txt"
    python, stamp = LAMBDA_VENV / "bin" / "python", LAMBDA_VENV / ".requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == requirements.read_text():
        return str(python)
    base = _python_312() or sys.executable
    print(
        f"making {LAMBDA_VENV.relative_to(ROOT)} ({base}, functions/requirements.txt) for the children",
        flush=True,
    )
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(LAMBDA_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(requirements)], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"could not make it ({error}); measuring with {sys.executable}, which overstates imports")
        return sys.executable
    stamp.write_text(requirements.read_text())
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("COLD_START_RUNS", "10")))
    parser.add_argument("--only", default=",".join(FUNCTIONS), help="functions, comma-separated")
    parser.add_argument(
        "--python",
        default=os.environ.get("COLD_START_PYTHON"),
        help="the interpreter for the children (default: a venv of the Lambda package, Python 3.12 if found)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a function tree to measure (repeat to compare; the last one is held to the goals); "
        "default: this repo's functions/",
    )
    parser.add_argument("--out", default="cold_start", help="results name (bench/results/<out>.json)")
    args = parser.parse_args()
    from bench import figures as results

    if results.smoke():  # one run, in this interpreter: no Lambda venv to build
        args.runs, args.python = 1, args.python or sys.executable
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    trees = [tree.resolve() for tree in args.tree or [ROOT / "functions"]]
    started = time.perf_counter()
    figures = measure(args.runs, args.python or lambda_python(), trees, names)
    missed = report(figures)
    results.write(args.out, {**figures, "missed": missed})
    print("\n".join(["", *MARKDOWN_HEADER, *markdown_rows(list(figures["trees"].values())[-1])]))
    summary = f"; goals missed: {', '.join(missed)}" if missed else "; every goal met"
    print(f"({time.perf_counter() - started:.0f} s){summary}")


if __name__ == "__main__":
    main()
