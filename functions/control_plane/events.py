"""LiveKit webhook events: signature check over the raw body, then plain pydantic models.

Verification is livekit-api's ``WebhookReceiver`` check, done here with the two pieces it is
made of (PyJWT and the ``WebhookEvent`` protobuf): JWT with ``iss`` = API key, HS256 with the
secret, ``exp`` required, one minute of leeway, claim ``sha256`` = base64 sha256 of the exact
body. Importing ``livekit.api`` for it would load aiohttp and every Twirp service (~150 ms of a
cold webhook); tests/unit/test_webhook_verification.py holds the two to the same verdicts. The
protobuf ``WebhookEvent`` never leaves this module, so the core sees no protojson quirks
(int64 as strings, omitted defaults, enum names).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from control_plane.humans import is_human
from control_plane.room import ChangeKind, ParticipantChange


class WebhookRejected(Exception):
    """The request is not from our LiveKit (missing, forged, expired or mismatched signature)."""


class MalformedWebhook(Exception):
    """Signed correctly, but the body is not a LiveKit event we can read."""


class EventType(StrEnum):
    ROOM_STARTED = "room_started"
    ROOM_FINISHED = "room_finished"
    PARTICIPANT_JOINED = "participant_joined"
    PARTICIPANT_LEFT = "participant_left"
    PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"


_CHANGE_KINDS = {
    EventType.PARTICIPANT_JOINED.value: ChangeKind.JOINED,
    EventType.PARTICIPANT_LEFT.value: ChangeKind.LEFT,
    EventType.PARTICIPANT_CONNECTION_ABORTED.value: ChangeKind.LEFT,
}


class EventRoom(BaseModel):
    model_config = ConfigDict(frozen=True)

    sid: str
    name: str
    departure_timeout: int = 0
    num_participants: int = 0
    created_at: float = 0.0


class EventParticipant(BaseModel):
    model_config = ConfigDict(frozen=True)

    sid: str
    identity: str
    kind: int = 0

    @property
    def is_human(self) -> bool:
        return is_human(self.kind)


class LiveKitEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    event: str
    created_at: int
    room: EventRoom | None = None
    participant: EventParticipant | None = None

    @property
    def type(self) -> EventType | None:
        try:
            return EventType(self.event)
        except ValueError:
            return None

    def participant_change(self) -> ParticipantChange | None:
        """The human join/leave this event reports, or None (not a human, or not a join/leave)."""
        kind = _CHANGE_KINDS.get(self.event)
        if kind is None or self.room is None or self.participant is None or not self.participant.is_human:
            return None
        return ParticipantChange(
            kind=kind,
            room=self.room.name,
            room_sid=self.room.sid,
            sid=self.participant.sid,
            identity=self.participant.identity,
            at=float(self.created_at),
            room_created_at=self.room.created_at,
        )


# livekit-api's TokenVerifier: DEFAULT_LEEWAY, and exp required (livekit/protocol#1706).
TOKEN_LEEWAY_SECONDS = 60


class _SignatureMismatch(Exception):
    """The token is valid but does not sign this body."""


def _check_signature(body: str, authorization: str, api_key: str, api_secret: str) -> None:
    """What ``WebhookReceiver(TokenVerifier(key, secret)).receive`` checks before it parses."""
    import jwt

    if not api_key or not api_secret:
        raise ValueError("api_key and api_secret must be set")
    claims = jwt.decode(
        authorization,
        key=api_secret,
        issuer=api_key,
        algorithms=["HS256"],
        leeway=TOKEN_LEEWAY_SECONDS,
        options={"verify_signature": True, "require": ["exp"]},
    )
    signed_digest = claims.get("sha256", "")
    if not signed_digest:
        raise _SignatureMismatch("sha256 was not found in the token")
    if not hmac.compare_digest(hashlib.sha256(body.encode()).digest(), base64.b64decode(signed_digest)):
        raise _SignatureMismatch("hash mismatch")


def verify_webhook(raw_body: bytes, authorization: str | None, api_key: str, api_secret: str) -> LiveKitEvent:
    """Check the signature over ``raw_body`` and parse it; raises WebhookRejected or MalformedWebhook."""
    from google.protobuf.json_format import Parse, ParseError
    from livekit.protocol.webhook import WebhookEvent

    if not authorization:
        raise WebhookRejected("missing Authorization header")
    try:
        body = raw_body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WebhookRejected("body is not UTF-8, so it cannot carry a LiveKit signature") from error
    try:
        _check_signature(body, authorization, api_key, api_secret)
    except Exception as error:  # jwt's errors, a bad digest, base64 that does not decode
        raise WebhookRejected(f"signature check failed: {type(error).__name__}") from error
    try:
        proto = Parse(body, WebhookEvent(), ignore_unknown_fields=True)
    except ParseError as error:
        raise MalformedWebhook(f"body is not a LiveKit webhook event: {error}") from error
    except Exception as error:  # as the receiver's callers saw it: any other failure is a rejection
        raise WebhookRejected(f"signature check failed: {type(error).__name__}") from error
    return _from_proto(proto)


def _from_proto(proto: object) -> LiveKitEvent:
    event_id = getattr(proto, "id", "")
    if not event_id:
        raise MalformedWebhook("event has no id, so duplicates could not be recognised")
    room = getattr(proto, "room", None)
    participant = getattr(proto, "participant", None)
    has_room = proto.HasField("room")  # type: ignore[attr-defined]
    has_participant = proto.HasField("participant")  # type: ignore[attr-defined]
    return LiveKitEvent(
        id=event_id,
        event=getattr(proto, "event", ""),
        created_at=int(getattr(proto, "created_at", 0)),
        room=EventRoom(
            sid=room.sid,
            name=room.name,
            departure_timeout=room.departure_timeout,
            num_participants=room.num_participants,
            created_at=room.creation_time_ms / 1000 if room.creation_time_ms else float(room.creation_time),
        )
        if has_room and room is not None
        else None,
        participant=EventParticipant(
            sid=participant.sid, identity=participant.identity, kind=int(participant.kind)
        )
        if has_participant and participant is not None
        else None,
    )
