"""The log rate limiter, driven by a virtual clock through a real ``logging.Logger``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from control_plane.log_rate_limit import SUMMARY_LOGGER, RateLimitedHandler


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def written() -> Capture:
    return Capture()


@pytest.fixture
def log(clock: VirtualClock, written: Capture) -> Iterator[logging.Logger]:
    logger = logging.getLogger("test.rate_limit")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = RateLimitedHandler(
        written,
        lines_per_second=10,
        burst=10,
        warning_reserve=0.2,
        repeat_window=5,
        summary_interval=30,
        clock=clock,
    )
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def test_lines_within_the_budget_all_pass_in_order(log: logging.Logger, written: Capture) -> None:
    for number in range(5):
        log.info("line %d", number)

    assert written.messages == [f"line {number}" for number in range(5)]


def test_info_beyond_the_budget_is_dropped_and_the_budget_refills_at_the_rate(
    log: logging.Logger, written: Capture, clock: VirtualClock
) -> None:
    for number in range(100):
        log.info("burst %d", number)
    assert len(written.records) == 8  # burst of 10 minus the 2 reserved for warnings

    clock.advance(0.5)
    for number in range(100):
        log.debug("half a second later %d", number)
    assert len([m for m in written.messages if m.startswith("half a second later")]) == 5


def test_errors_are_never_dropped_nor_aggregated(log: logging.Logger, written: Capture) -> None:
    for number in range(50):
        log.info("flood %d", number)
    for _ in range(200):
        log.error("database down")
    log.critical("giving up")

    assert written.messages.count("database down") == 200
    assert written.messages[-1] == "giving up"


def test_warnings_keep_a_reserved_share_that_info_cannot_use(log: logging.Logger, written: Capture) -> None:
    for number in range(100):
        log.info("chatty %d", number)
    log.warning("disk almost full")
    log.warning("heartbeat late")

    assert written.messages[-2:] == ["disk almost full", "heartbeat late"]


def test_repeats_are_counted_then_reported_once_when_the_window_closes(
    log: logging.Logger, written: Capture, clock: VirtualClock
) -> None:
    for _ in range(50):
        log.warning("reconnecting to %s", "livekit")
    assert written.messages == ["reconnecting to livekit"]

    clock.advance(5.0)
    log.info("something else")

    assert written.messages == [
        "reconnecting to livekit",
        "reconnecting to livekit … repeated 49 times",
        "something else",
    ]
    repeat_line = written.records[1]
    assert repeat_line.levelno == logging.WARNING
    assert repeat_line.__dict__["repeated"] == 49


def test_lines_differing_only_in_extra_fields_are_not_repeats(log: logging.Logger, written: Capture) -> None:
    log.info("job started", extra={"job_id": "AJ_1"})
    log.info("job started", extra={"job_id": "AJ_2"})
    log.info("job started", extra={"job_id": "AJ_1"})

    assert [record.__dict__["job_id"] for record in written.records] == ["AJ_1", "AJ_2"]


def test_a_drop_summary_is_written_once_per_interval_when_lines_were_dropped(
    log: logging.Logger, written: Capture, clock: VirtualClock
) -> None:
    for number in range(20):
        log.info("noisy %d", number)
    logging.getLogger("test.rate_limit.other").debug("quiet")  # propagates to the same handler
    for number in range(5):
        log.debug("debug %d", number)

    clock.advance(30.0)
    log.info("after the interval")

    summaries = [record for record in written.records if record.name == SUMMARY_LOGGER]
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary.levelno == logging.WARNING
    assert summary.__dict__["dropped"] == 18
    assert summary.__dict__["dropped_by_level"] == {"INFO": 12, "DEBUG": 6}
    assert "dropped 18 lines in the last 30s" in summary.getMessage()
    assert "most from test.rate_limit 17, test.rate_limit.other 1" in summary.getMessage()

    clock.advance(30.0)
    log.info("quiet period")
    assert [record.name for record in written.records].count(SUMMARY_LOGGER) == 1


def test_flush_writes_what_is_due_without_waiting_for_another_line(
    log: logging.Logger, written: Capture, clock: VirtualClock
) -> None:
    for _ in range(3):
        log.info("same")
    clock.advance(5.0)

    for handler in log.handlers:
        handler.flush()

    assert written.messages == ["same", "same … repeated 2 times"]


def test_close_writes_pending_repeats_and_the_summary_even_before_they_are_due(
    log: logging.Logger, written: Capture
) -> None:
    for _ in range(3):
        log.info("same")
    for number in range(20):
        log.info("noisy %d", number)

    for handler in log.handlers:
        handler.close()

    assert "same … repeated 2 times" in written.messages
    assert any(record.name == SUMMARY_LOGGER for record in written.records)


def test_settings_that_cannot_work_are_refused(written: Capture) -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimitedHandler(written, lines_per_second=0)
    with pytest.raises(ValueError, match="share"):
        RateLimitedHandler(written, warning_reserve=1.0)
