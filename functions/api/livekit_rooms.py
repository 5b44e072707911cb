"""Deleting a LiveKit room, for an operator's ``close`` with ``delete_room``.

The core's ``LiveKitGateway`` port has no ``DeleteRoom`` (nothing automatic ever deletes a room),
so this one call lives with its only user. It runs on the gateway's own event loop (its public
``run``), as every LiveKit call of a Lambda must, with a short-lived client, and sorts failures
the way the gateway does: an outage is ``LiveKitUnavailable`` (retried), a refusal final.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from livekit.api import LiveKitAPI
from livekit.api.twirp_client import ServerError
from livekit.protocol.room import DeleteRoomRequest

from api.errors import LiveKitRefused
from control_plane.adapters.livekit_gateway import DEFAULT_TIMEOUT_SECONDS, LiveKitApiGateway
from control_plane.ports import LiveKitUnavailable

_NOT_FOUND = "not_found"


class LiveKitRoomDeleter:
    def __init__(
        self, gateway: LiveKitApiGateway, url: str, credentials: Callable[[], tuple[str, str]]
    ) -> None:
        self._gateway = gateway
        self._url = url
        self._credentials = credentials

    def delete_room(self, name: str) -> bool:
        """Delete the room, disconnecting everyone in it; False if it was not open."""
        return self._gateway.run(self._delete(name))

    async def _delete(self, name: str) -> bool:
        api_key, api_secret = self._credentials()
        api = LiveKitAPI(
            self._url, api_key, api_secret, timeout=aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT_SECONDS)
        )
        try:
            await api.room.delete_room(DeleteRoomRequest(room=name))
        except (TimeoutError, aiohttp.ClientError) as error:
            raise LiveKitUnavailable(f"LiveKit delete_room unreachable: {type(error).__name__}") from error
        except ServerError as error:
            if error.code == _NOT_FOUND:
                return False
            failure = f"LiveKit delete_room: {error.code} (HTTP {error.status})"
            if error.status >= 500 or error.status == 429:
                raise LiveKitUnavailable(failure) from error
            raise LiveKitRefused(failure) from error
        finally:
            await api.aclose()
        return True
