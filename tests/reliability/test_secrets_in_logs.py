"""Nothing the control plane logs contains a secret, a token or a key.

A whole room session goes through the real handlers (moto and the fake LiveKit server) with
everything that makes code log more than usual: a forged and a malformed webhook, LiveKit down
(a 503 and its traceback), a rotated LiveKit secret, ECS task events and a sweep. The
environment also holds the agent's Deepgram and LLM keys and distinctive AWS credentials, as a
misconfigured function would. Every line printed (Powertools writes JSON to stdout) and every
log record with its extra fields is searched for each of them, for JWTs (``eyJ``: webhook
signatures and the Bearer tokens of LiveKit calls) and for signed AWS request headers.
"""

from __future__ import annotations

import json
import logging
import secrets

import pytest

from control_plane import composition
from control_plane.worker_protocol import WorkerReady
from handlers import sweeper, task_events
from local.fixtures import (
    LambdaContext,
    LocalAws,
    ecs_task_state_change,
    scheduler_event,
    signed_headers,
    sqs_event,
    worker_registers,
)
from tests.reliability.invariants import holds, secrets_in
from tests.reliability.lambdas import invoke, livekit_body, status, timer_job, webhook_job
from tests.reliability.report import Figures

ROOM = "room-1"


class Session:
    """Drives the handlers and keeps each step's answer (an HTTP-like status)."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self.live = aws.livekit.state.open_room(ROOM, departure_timeout=20)
        self.steps: dict[str, int] = {}

    def post(self, what: str, body: bytes, secret: str | None = None) -> None:
        headers = signed_headers(body, self.aws.livekit.api_key, secret or self.aws.livekit.api_secret)
        self.steps[what] = status(invoke(webhook_job(self.aws, body, headers), LambdaContext()))

    def ran(self, what: str, ok: bool) -> None:
        self.steps[what] = 200 if ok else 500

    def event(self, kind: str, sid: str | None = None) -> bytes:
        return livekit_body(kind, self.live, sid=sid)


def play(session: Session, known: dict[str, str]) -> None:
    aws, state = session.aws, session.aws.livekit.state
    session.post("room_started, short departure_timeout", session.event("room_started"))
    state.add_participant(ROOM, "PA_1", "alice")
    session.post("alice joins", session.event("participant_joined", "PA_1"))
    task = worker_registers(aws, ROOM)
    ready = invoke(timer_job(WorkerReady(task_arn=task, room=ROOM), "ready"), LambdaContext())
    session.ran("worker ready", ready == {"batchItemFailures": []})
    state.add_participant(ROOM, "PA_2", "alice")
    session.post("refresh: new sid", session.event("participant_joined", "PA_2"))
    state.remove_participant(ROOM, "PA_1")
    session.post("refresh: old sid leaves", session.event("participant_left", "PA_1"))
    state.close_room(ROOM)
    aws.livekit.set_down(True)
    session.post("room_finished while LiveKit is down", session.event("room_finished"))
    aws.livekit.set_down(False)
    session.post("room_finished retried", session.event("room_finished"))
    stopped = ecs_task_state_change(task, "STOPPED", 3, room=ROOM, stop_code="UserInitiated", exit_code=143)
    session.ran("task stopped", "outcome" in task_events.handler(stopped, LambdaContext()))
    session.ran("sweep", "rooms_total" in sweeper.handler(scheduler_event(), LambdaContext()))
    drained = invoke({"handler": "timer", "event": sqs_event(aws.queue_url)}, LambdaContext())
    session.ran("timer queue", drained.get("batchItemFailures") == [])
    # The LiveKit secret is rotated (the fake server keeps verifying API calls with the old one,
    # so only webhooks follow from here): the first webhook signed with it forces a fresh read.
    rotated = known["rotated LiveKit API secret"]
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.env["LIVEKIT_SECRET_ARN"],
        SecretString=json.dumps({"api_key": aws.livekit.api_key, "api_secret": rotated}),
    )
    session.post("signed with the rotated secret", session.event("track_published", "PA_2"), rotated)
    session.post("forged", session.event("participant_joined", "PA_X"), secret="forged-secret")
    session.post("malformed", b'{"event": "participant_joined", "id": "EV_bad", "room": {"sid": 7}', rotated)


def test_a_whole_session_logs_no_secret_token_or_key(
    aws: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    figures: Figures,
) -> None:
    known = {
        "LiveKit API secret": aws.livekit.api_secret,
        "rotated LiveKit API secret": f"rotated-{secrets.token_urlsafe(32)}",
        "Deepgram API key": f"dg-{secrets.token_hex(20)}",
        "LLM API key": f"sk-{secrets.token_urlsafe(32)}",
        "AWS secret access key": f"reliability{secrets.token_urlsafe(24)}",
        "AWS session token": f"reliability-session-{secrets.token_urlsafe(48)}",
    }
    for variable, label in [
        ("DEEPGRAM_API_KEY", "Deepgram API key"),
        ("OPENAI_API_KEY", "LLM API key"),
        ("AWS_SECRET_ACCESS_KEY", "AWS secret access key"),
        ("AWS_SESSION_TOKEN", "AWS session token"),
    ]:
        monkeypatch.setenv(variable, known[label])
    composition.reset()
    caplog.set_level(logging.DEBUG, logger="control_plane")
    caplog.set_level(logging.INFO)
    session = Session(aws)

    play(session, known)

    printed = capsys.readouterr()
    records = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    logged = "\n".join([printed.out, printed.err, caplog.text, records])
    found = secrets_in(logged, known)
    figures.record(
        "secrets: a whole session's logs searched",
        "no secret, key, JWT or signed header",
        secrets_searched=len(known) + 2,
        log_lines=len(logged.splitlines()),
        duplicates=0,
    )
    steps = session.steps
    assert steps.pop("room_finished while LiveKit is down") == 503, steps
    assert (steps.pop("forged"), steps.pop("malformed")) == (401, 400)
    assert set(steps.values()) == {200}, steps
    assert any("LiveKit unavailable" in r.getMessage() for r in caplog.records), "the 503 path was not logged"
    holds(found)
