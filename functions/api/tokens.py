"""Participant tokens for the join route: room-scoped grants only, short-lived.

The token may join exactly one room and publish, subscribe and send data there; it carries no
admin, create, list, record or agent grant, so a leaked token cannot reach another room or the
server API. Its TTL only bounds how long it can be used to connect: LiveKit keeps a connected
participant past it. It also carries the room's configuration (``departure_timeout`` = join
reservation + grace + margin), so if LiveKit closed the empty room before the human connected,
the room the token re-creates still outlasts the grace period. It never carries an agent dispatch: agents come
only from the control plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jwt
from livekit.api import AccessToken, VideoGrants
from livekit.protocol.room import RoomConfiguration


@dataclass(frozen=True)
class ParticipantToken:
    jwt: str
    expires_at: int


def participant_token(
    credentials: tuple[str, str],
    *,
    room: str,
    identity: str,
    name: str | None,
    metadata: str | None,
    attributes: dict[str, str],
    ttl_seconds: int,
    departure_timeout: int,
) -> ParticipantToken:
    api_key, api_secret = credentials
    grants = VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True
    )
    token = (
        AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl_seconds))
        .with_room_config(
            RoomConfiguration(name=room, departure_timeout=departure_timeout, empty_timeout=departure_timeout)
        )
    )
    if name is not None:
        token = token.with_name(name)
    if metadata is not None:
        token = token.with_metadata(metadata)
    if attributes:
        token = token.with_attributes(attributes)
    signed = token.to_jwt()
    claims = jwt.decode(signed, options={"verify_signature": False})
    return ParticipantToken(jwt=signed, expires_at=int(claims["exp"]))
