"""Humans as real WebRTC participants (the ``livekit`` rtc SDK), each publishing a sine wave, and
the event loop they live on, so synchronous tests and benchmarks can drive them.

A :class:`Human` records what a person in the room would see: which agents are there, when
the first one appeared (against when the human connected), and whether the agent's audio
reaches it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
from livekit import api, rtc

T = TypeVar("T")

SAMPLE_RATE = 48000
FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms
TONE_HZ = 440.0
AMPLITUDE = 8000
AUDIBLE = 500
"""A frame whose peak is above this carries sound (the echo of a sine, not silence)."""
TOKEN_TTL_SECONDS = 600


class EventLoop:
    """One asyncio loop on its own thread for every participant and LiveKit API call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="rtc-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def token(api_key: str, api_secret: str, room: str, identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=TOKEN_TTL_SECONDS))
        .to_jwt()
    )


class Human:
    """One person in one room. Methods are coroutines for :class:`EventLoop`."""

    def __init__(self, url: str, room: str, identity: str, token: str) -> None:
        self.url = url
        self.room_name = room
        self.identity = identity
        self._token = token
        self.room: rtc.Room | None = None
        """Made by :meth:`connect`, on the loop (a ``Room`` binds the loop it is made on)."""
        self.connecting_at: float | None = None
        self.connected_at: float | None = None
        self.first_agent_at: float | None = None
        """When this human first saw an agent participant (``time.monotonic``)."""
        self.agents_seen: list[str] = []
        """Every agent identity this human saw join, in order (repeats are not listed)."""
        self.audible_agent_frames = 0
        self._tasks: list[asyncio.Task[None]] = []

    # --- what the human sees (read from any thread: plain values) --------------------------

    def agents(self) -> list[str]:
        present = list(self.room.remote_participants.values()) if self.room is not None else []
        return sorted(p.identity for p in present if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)

    @property
    def agent_latency(self) -> float | None:
        """Seconds from this human's connection to its first sight of an agent (0 if one was
        already there)."""
        if self.connected_at is None or self.first_agent_at is None:
            return None
        return max(0.0, self.first_agent_at - self.connected_at)

    # --- life ------------------------------------------------------------------------------

    async def connect(self) -> Human:
        room = self.room = rtc.Room()
        room.on("participant_connected", self._joined)
        room.on("track_subscribed", self._subscribed)
        self.connecting_at = time.monotonic()
        await room.connect(self.url, self._token, rtc.RoomOptions(auto_subscribe=True))
        self.connected_at = time.monotonic()
        for participant in room.remote_participants.values():
            self._joined(participant)
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)
        self._tasks.append(asyncio.create_task(_sine(source), name=f"sine-{self.identity}"))
        return self

    async def disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.room is not None:
            await self.room.disconnect()

    # --- events ----------------------------------------------------------------------------

    def _joined(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return
        if self.first_agent_at is None:
            self.first_agent_at = time.monotonic()
        if participant.identity not in self.agents_seen:
            self.agents_seen.append(participant.identity)

    def _subscribed(
        self, track: rtc.Track, _publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if (
            track.kind == rtc.TrackKind.KIND_AUDIO
            and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ):
            self._tasks.append(asyncio.create_task(self._listen(track), name=f"listen-{self.identity}"))

    async def _listen(self, track: rtc.Track) -> None:
        try:
            stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        except AssertionError:  # the SDK's answer when the track ended first (the room was deleted)
            return
        async for event in stream:
            if int(np.abs(np.frombuffer(event.frame.data, dtype=np.int16)).max(initial=0)) > AUDIBLE:
                self.audible_agent_frames += 1


async def _sine(source: rtc.AudioSource) -> None:
    """A 440 Hz tone, 10 ms at a time; ``capture_frame`` paces it in real time."""
    step = 2 * math.pi * TONE_HZ / SAMPLE_RATE
    phase = 0.0
    while True:
        samples = AMPLITUDE * np.sin(phase + step * np.arange(FRAME_SAMPLES))
        phase = (phase + step * FRAME_SAMPLES) % (2 * math.pi)
        frame = rtc.AudioFrame(samples.astype(np.int16).tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
        await source.capture_frame(frame)
