"""Webhook delivery the way LiveKit's ResourceURLNotifier does it (livekit/protocol ``webhook/``).

- One queue per room (LiveKit's EventKey: the room name) for the one URL, worked one event at a
  time, in order. A queue already holding ``max_depth`` (200) events refuses the next one: it is
  dropped at once ("queue is full").
- The body is the protojson of ``WebhookEvent`` (camelCase names, int64 as strings, enums by
  name); ``Authorization`` is a JWT signed with the API secret (HS256, ``iss`` the API key, valid
  5 minutes) whose ``sha256`` claim is the base64 sha256 of the exact body; the content type is
  ``application/webhook+json``.
- An event that waited in its queue longer than ``max_age`` (30 s) is dropped unsent.
- A send is tried up to ``max_retries`` + 1 times (go-retryablehttp's defaults: 4 retries,
  waiting 1, 2, 4, 8 s, never more than 30 s, or what a 429's or 503's ``Retry-After`` asks) on
  connection errors, 429 and 5xx other than 501; any other answer ends it, so a 4xx is not
  retried. After the last failure the event is dropped, and its room's queue moves on. LiveKit's
  HTTP client sets no request timeout, so by default neither does this: an endpoint that never
  answers holds its room's queue.

Faults are drawn from a seeded generator as each event is queued: ``loss`` (never sent),
``duplicate`` (sent twice with the same id and body, as when LiveKit retries a request whose
answer was lost) and ``reorder`` (held back until up to ``reorder_window`` later events of its
room went out, or ``DeliveryPolicy.hold`` passed without one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
from collections import Counter, deque
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import aiohttp
from google.protobuf.json_format import MessageToJson
from livekit.api import AccessToken
from livekit.protocol.webhook import WebhookEvent

from local.livekit_sim.models import WebhookFaults, WebhookStats

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/webhook+json"
TOKEN_TTL = timedelta(minutes=5)
IDLE_QUEUE_SECONDS = 60.0  # a room's queue with nothing to send for this long is let go
RECORDS_KEPT = 10_000


@dataclass(frozen=True)
class DeliveryPolicy:
    max_age: float = 30.0
    max_depth: int = 200
    max_retries: int = 4
    retry_wait_min: float = 1.0
    retry_wait_max: float = 30.0
    request_timeout: float | None = None
    hold: float = 1.0  # longest a reordered event waits for later ones of its room

    def retry_wait(self, retry: int, status: int | None = None, retry_after: str | None = None) -> float:
        """go-retryablehttp's DefaultBackoff before retry number ``retry`` (1, 2, ...): a 429's
        or 503's ``Retry-After`` in seconds if it has one, else doubling from the minimum."""
        if status in (429, 503) and retry_after is not None and retry_after.strip().isdigit():
            return float(retry_after.strip())
        return float(min(self.retry_wait_min * 2 ** (retry - 1), self.retry_wait_max))


class Outcome(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"  # a final answer that is not 2xx: LiveKit does not retry it
    DROPPED = "dropped"
    LOST = "lost"


@dataclass(frozen=True)
class Delivery:
    """What became of one queued copy of an event."""

    event_id: str
    event: str
    room: str
    outcome: Outcome
    attempts: int = 0
    status: int | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class _Item:
    event: WebhookEvent
    body: bytes
    queued_at: float
    hold: bool
    duplicate: bool = False


class WebhookSender:
    """Queues events from any thread (``submit``) and sends them from the server's loop."""

    def __init__(
        self,
        url: str | None,
        api_key: str,
        api_secret: str,
        policy: DeliveryPolicy | None = None,
        faults: WebhookFaults | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self.policy = policy or DeliveryPolicy()
        self._faults = faults or WebhookFaults()
        self._rng = random.Random(self._faults.seed)
        self.deliveries: deque[Delivery] = deque(maxlen=RECORDS_KEPT)
        self._counts: Counter[Outcome] = Counter()
        self._duplicated = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[str, asyncio.Queue[_Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    @property
    def faults(self) -> WebhookFaults:
        return self._faults

    def set_faults(self, faults: WebhookFaults) -> None:
        """New fault rates from the next event on; a ``seed`` restarts the draws from it."""
        self._faults = faults
        self._rng = random.Random(faults.seed)

    def stats(self) -> WebhookStats:
        return WebhookStats(
            url=self.url,
            queued=sum(queue.qsize() for queue in self._queues.values()),
            delivered=self._counts[Outcome.DELIVERED],
            rejected=self._counts[Outcome.REJECTED],
            dropped=self._counts[Outcome.DROPPED],
            lost=self._counts[Outcome.LOST],
            duplicated=self._duplicated,
            faults=self._faults,
        )

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop at once: what is still queued is not sent (LiveKit's forced Stop)."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
        self._loop = self._session = None

    def submit(self, event: WebhookEvent) -> None:
        """Queue ``event`` for its room; safe from any thread. Without a URL nothing is sent."""
        if self.url is None:
            return
        if self._loop is None:
            raise RuntimeError("start the simulator before changing its rooms")
        self._loop.call_soon_threadsafe(self._accept, event)

    # --- on the loop -------------------------------------------------------------------------

    def _accept(self, event: WebhookEvent) -> None:
        if self._session is None:  # closed while this was on its way
            return
        lose, duplicate, hold = (self._rng.random() for _ in range(3))
        faults = self._faults
        if lose < faults.loss:
            self._record(event, Outcome.LOST)
            return
        item = _Item(event, MessageToJson(event, indent=None).encode(), _now(), hold < faults.reorder)
        queue = self._queues.get(event.room.name)
        if queue is None:
            queue = self._queues[event.room.name] = asyncio.Queue()
            self._workers[event.room.name] = asyncio.create_task(self._work(event.room.name, queue))
        if queue.qsize() >= self.policy.max_depth:
            logger.info("dropped webhook", extra={"id": event.id, "reason": "queue is full"})
            self._record(event, Outcome.DROPPED)
            return
        queue.put_nowait(item)
        if duplicate < faults.duplicate and queue.qsize() < self.policy.max_depth:
            self._duplicated += 1
            queue.put_nowait(_Item(event, item.body, item.queued_at, hold=False, duplicate=True))

    async def _work(self, room: str, queue: asyncio.Queue[_Item]) -> None:
        held: _Item | None = None
        passed = 0
        while True:
            try:
                async with asyncio.timeout(self.policy.hold if held else IDLE_QUEUE_SECONDS):
                    item = await queue.get()
            except TimeoutError:
                if held is not None:
                    await self._send(held)
                    held = None
                elif queue.empty():
                    del self._queues[room], self._workers[room]
                    return
                continue
            if item.hold and held is None:
                held, passed = item, 0
                continue
            await self._send(item)
            passed += 1
            if held is not None and passed >= self._faults.reorder_window:
                await self._send(held)
                held = None

    async def _send(self, item: _Item) -> None:
        if _now() - item.queued_at > self.policy.max_age:
            logger.info("dropped webhook", extra={"id": item.event.id, "reason": "age"})
            self._record(item.event, Outcome.DROPPED, duplicate=item.duplicate)
            return
        assert self.url is not None and self._session is not None
        headers = self._signed_headers(item.body)
        timeout = aiohttp.ClientTimeout(total=self.policy.request_timeout)
        status: int | None = None
        retry_after: str | None = None
        for attempt in range(1, self.policy.max_retries + 2):
            if attempt > 1:
                await asyncio.sleep(self.policy.retry_wait(attempt - 1, status, retry_after))
            try:
                async with self._session.post(
                    self.url, data=item.body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                status = retry_after = None
                logger.debug("webhook attempt failed", extra={"id": item.event.id, "error": repr(error)})
                continue
            if not _retryable(status):
                outcome = Outcome.DELIVERED if 200 <= status < 300 else Outcome.REJECTED
                self._record(item.event, outcome, attempt, status, item.duplicate)
                return
        logger.warning("failed to send webhook", extra={"id": item.event.id, "status": status})
        self._record(item.event, Outcome.DROPPED, self.policy.max_retries + 1, status, item.duplicate)

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        token = AccessToken(self._api_key, self._api_secret).with_sha256(digest).with_ttl(TOKEN_TTL).to_jwt()
        return {"Authorization": token, "Content-Type": CONTENT_TYPE, "User-Agent": "LiveKit"}

    def _record(
        self,
        event: WebhookEvent,
        outcome: Outcome,
        attempts: int = 0,
        status: int | None = None,
        duplicate: bool = False,
    ) -> None:
        self._counts[outcome] += 1
        self.deliveries.append(
            Delivery(event.id, event.event, event.room.name, outcome, attempts, status, duplicate)
        )


def _retryable(status: int) -> bool:
    """go-retryablehttp's DefaultRetryPolicy for an answer that arrived."""
    return status == 429 or (status >= 500 and status != 501)


def _now() -> float:
    return asyncio.get_running_loop().time()
