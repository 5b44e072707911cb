"""The keyless pipeline (``AGENT_PIPELINE=echo``): the agent publishes one audio track that plays
back, mixed, what every human in the room says. No speech or language provider is called, so
the real worker runs end to end (the e2e tier, ``make dev``) without accounts; a human hearing
its own voice back knows the agent is in the room and its media path works."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from livekit import rtc

SAMPLE_RATE = 48000
CHANNELS = 1
TRACK_NAME = "echo"

FrameSink = Callable[[rtc.AudioFrame], Awaitable[None]]


class Echo:
    """Mixes the audio streams it is given and sends the mix to ``sink`` until closed."""

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink
        self._mixer = rtc.AudioMixer(SAMPLE_RATE, CHANNELS)
        self._pump = asyncio.create_task(self._forward(), name="echo")

    def add(self, stream: AsyncIterator[rtc.AudioFrame]) -> None:
        self._mixer.add_stream(stream)

    async def aclose(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        await self._mixer.aclose()

    async def _forward(self) -> None:
        async for frame in self._mixer:
            await self._sink(frame)


async def frames_of(stream: AsyncIterator[rtc.AudioFrameEvent]) -> AsyncIterator[rtc.AudioFrame]:
    """An ``rtc.AudioStream`` yields events; the mixer takes frames."""
    async for event in stream:
        yield event.frame


def is_human(participant: rtc.RemoteParticipant) -> bool:
    """Agents (another job's, or a stale one of ours) are not echoed back."""
    return participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


async def serve_echo(room: rtc.Room) -> Echo:
    """Publish the echo track and feed it every human audio track, present and future."""
    source = rtc.AudioSource(SAMPLE_RATE, CHANNELS)
    track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, source)
    echo = Echo(source.capture_frame)

    def subscribed(
        track: rtc.Track, _publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and is_human(participant):
            echo.add(frames_of(rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=CHANNELS)))

    room.on("track_subscribed", subscribed)
    for participant in room.remote_participants.values():
        for publication in participant.track_publications.values():
            if publication.track is not None:
                subscribed(publication.track, publication, participant)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)
    return echo
