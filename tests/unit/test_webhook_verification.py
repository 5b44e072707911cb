"""``verify_webhook`` gives livekit-api's ``WebhookReceiver`` verdict on every kind of token.

``control_plane.events`` checks signatures with PyJWT and the ``WebhookEvent`` protobuf instead
of importing ``livekit.api`` (aiohttp and every Twirp service, ~150 ms of a cold webhook), so
this table holds the two to the same answer: accepted (same event), rejected or malformed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from google.protobuf.json_format import ParseError
from livekit.api import TokenVerifier, WebhookReceiver

from control_plane.events import MalformedWebhook, WebhookRejected, _from_proto, verify_webhook

KEY, SECRET = "APIkey", "a-secret-long-enough-for-hs256-0123456789"
BODY = json.dumps(
    {
        "event": "participant_joined",
        "id": "EV_1",
        "createdAt": "1800000000",
        "room": {"sid": "RM_1", "name": "room-1", "creationTime": "1799999990"},
        "participant": {"sid": "PA_1", "identity": "alice", "kind": "STANDARD"},
    }
).encode()


def digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def token(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": KEY, "exp": int(time.time()) + 300, "sha256": digest(BODY)}
    return {name: value for name, value in (base | changes).items() if value is not None}


TOKENS: dict[str, Callable[[], str]] = {
    "valid": lambda: token(claims()),
    "expired within the minute of leeway": lambda: token(claims(exp=int(time.time()) - 30)),
    "expired past the leeway": lambda: token(claims(exp=int(time.time()) - 120)),
    "no exp": lambda: token(claims(exp=None)),
    "not yet valid": lambda: token(claims(nbf=int(time.time()) + 600)),
    "other API key": lambda: token(claims(iss="other-key")),
    "no issuer": lambda: token(claims(iss=None)),
    "other secret": lambda: token(claims(), secret="another-secret-long-enough-for-hs256-0123"),
    "HS512": lambda: token(claims(), algorithm="HS512"),
    "alg none": lambda: jwt.encode(claims(), "", algorithm="none"),
    "no sha256": lambda: token(claims(sha256=None)),
    "empty sha256": lambda: token(claims(sha256="")),
    "sha256 of another body": lambda: token(claims(sha256=digest(BODY + b" "))),
    "sha256 not base64": lambda: token(claims(sha256="%%%")),
    "sha256 a number": lambda: token(claims(sha256=12345)),
    "not a JWT": lambda: "not-a-jwt",
    "Bearer prefix": lambda: "Bearer " + token(claims()),
}


def livekit_verdict(body: bytes, authorization: str, key: str, secret: str) -> tuple[str, str]:
    """What ``verify_webhook`` answered while it called livekit-api's receiver itself."""
    try:
        proto = WebhookReceiver(TokenVerifier(key, secret)).receive(body.decode(), authorization)
    except ParseError:
        return ("malformed", "")
    except Exception:
        return ("rejected", "")
    try:
        return ("accepted", _from_proto(proto).id)
    except MalformedWebhook:
        return ("malformed", "")


def our_verdict(body: bytes, authorization: str, key: str, secret: str) -> tuple[str, str]:
    try:
        event = verify_webhook(body, authorization, key, secret)
    except MalformedWebhook:
        return ("malformed", "")
    except WebhookRejected:
        return ("rejected", "")
    return ("accepted", event.id)


@pytest.mark.parametrize("kind", list(TOKENS))
def test_every_token_gets_livekits_verdict(kind: str) -> None:
    authorization = TOKENS[kind]()
    assert our_verdict(BODY, authorization, KEY, SECRET) == livekit_verdict(BODY, authorization, KEY, SECRET)


def test_the_verdicts_are_the_ones_expected() -> None:
    accepted = {
        kind for kind, make in TOKENS.items() if our_verdict(BODY, make(), KEY, SECRET)[0] == "accepted"
    }
    assert accepted == {"valid", "expired within the minute of leeway"}


@pytest.mark.parametrize("body", [b'{"event": "room_started", "id": ', b'{"event": 5}', b"[]"])
def test_a_signed_body_that_is_no_event_is_malformed_for_both(body: bytes) -> None:
    authorization = token(claims(sha256=digest(body)))
    assert our_verdict(body, authorization, KEY, SECRET) == livekit_verdict(body, authorization, KEY, SECRET)
    assert our_verdict(body, authorization, KEY, SECRET)[0] == "malformed"


def test_missing_credentials_reject_like_livekits_verifier() -> None:
    authorization = token(claims())
    for key, secret in [("", SECRET), (KEY, "")]:
        assert our_verdict(BODY, authorization, key, secret) == ("rejected", "")


def test_an_accepted_event_reads_the_same_as_livekits() -> None:
    authorization = token(claims())
    proto = WebhookReceiver(TokenVerifier(KEY, SECRET)).receive(BODY.decode(), authorization)
    event = verify_webhook(BODY, authorization, KEY, SECRET)
    assert event.room is not None and event.participant is not None
    assert (event.id, event.event, event.created_at) == (proto.id, proto.event, proto.created_at)
    assert (event.room.sid, event.room.name) == (proto.room.sid, proto.room.name)
    assert (event.participant.sid, event.participant.identity) == (proto.participant.sid, "alice")
