"""The keyless pipeline: what the humans say comes back on the agent's track, mixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc

from agent_worker.echo import CHANNELS, SAMPLE_RATE, Echo, frames_of

BLOCK = SAMPLE_RATE // 10  # the mixer's 100 ms


def tone(level: int, blocks: int) -> AsyncIterator[rtc.AudioFrame]:
    async def frames() -> AsyncIterator[rtc.AudioFrame]:
        for _ in range(blocks):
            samples = np.full(BLOCK, level, dtype=np.int16)
            yield rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, CHANNELS, BLOCK)

    return frames()


def test_every_human_is_played_back_mixed_into_one_track() -> None:
    async def run() -> list[int]:
        heard: list[int] = []
        got_three = asyncio.Event()

        async def sink(frame: rtc.AudioFrame) -> None:
            heard.append(int(np.frombuffer(frame.data, dtype=np.int16)[0]))
            if len(heard) >= 3:
                got_three.set()

        echo = Echo(sink)
        echo.add(tone(100, 3))
        echo.add(tone(20, 3))
        await asyncio.wait_for(got_three.wait(), 5)
        await echo.aclose()
        return heard

    assert asyncio.run(run())[:3] == [120, 120, 120]


def test_an_agent_without_humans_sends_nothing() -> None:
    async def run() -> list[rtc.AudioFrame]:
        heard: list[rtc.AudioFrame] = []

        async def sink(frame: rtc.AudioFrame) -> None:
            heard.append(frame)

        echo = Echo(sink)
        await asyncio.sleep(0.3)
        await echo.aclose()
        return heard

    assert asyncio.run(run()) == []


def test_a_subscribed_track_is_mixed_as_frames_not_stream_events() -> None:
    """``rtc.AudioStream`` yields ``AudioFrameEvent``s; the mixer reads ``.data`` off frames."""

    async def events() -> AsyncIterator[rtc.AudioFrameEvent]:
        async for frame in tone(7, 2):
            yield rtc.AudioFrameEvent(frame)

    async def run() -> list[rtc.AudioFrame]:
        return [frame async for frame in frames_of(events())]

    frames = asyncio.run(run())

    assert [int(np.frombuffer(f.data, dtype=np.int16)[0]) for f in frames] == [7, 7]
