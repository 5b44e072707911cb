"""Room traffic, LiveKit's webhook delivery and infrastructure faults: seeded, as JSON lines.

A trace fixes everything a policy cannot change: when humans join and leave each room (page
refreshes, network blips, everyone leaving, rejoins inside and after the grace period), when
LiveKit closes each session (``departure_timeout`` after the last human), how its webhooks arrive
(delay, duplicates, reorderings, losses), when agent tasks crash, and when LiveKit's API or
Fargate capacity fails. Every policy replays the same trace, so their figures differ only by
what the policies do. The same seed always gives the same trace, byte for byte.

File layout: one JSON object per line. The first is the header (``kind: "trace"``, ``version``,
name, seed, size, the traffic and fault settings); then one ``session`` line per LiveKit room
session (presences ``[sid, identity, kind, join, leave, aborted]`` and webhooks ``[id, event, at,
sid, [delivery times]]``, an empty list meaning LiveKit never delivered it), then ``crash`` and
``outage`` lines. Times are seconds from the start of the trace.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

TRACE_VERSION = 1
STANDARD_KIND = 0
SIP_KIND = 3
DAY_SECONDS = 86_400.0
# z for the 99th percentile of a normal distribution: turns "median, p99" into a log-normal.
Z99 = 2.3263
# The app creates the LiveKit room this long before its first human connects.
ROOM_CREATED_BEFORE_JOIN_S = 0.5


@dataclass(frozen=True, slots=True)
class Presence:
    """One participant connection (one sid); a refresh or a blip gives the person a new sid."""

    sid: str
    identity: str
    kind: int
    join: float
    leave: float
    aborted: bool = False  # left as ``participant_connection_aborted``


@dataclass(frozen=True, slots=True)
class Webhook:
    """One LiveKit webhook and when LiveKit attempts it: each attempt has the same ``id``."""

    id: str
    event: str
    at: float
    sid: str | None
    deliveries: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Session:
    """One LiveKit session of a room name: open from just before its first join until
    ``departure_timeout`` after its last leave, when LiveKit closes it."""

    room: str
    index: int
    opened_at: float
    closed_at: float
    departure_timeout: int
    presences: tuple[Presence, ...]
    webhooks: tuple[Webhook, ...]


@dataclass(frozen=True, slots=True)
class Crash:
    """The agent serving ``room`` at ``at`` dies (exit 1), whatever policy put it there."""

    room: str
    at: float


@dataclass(frozen=True, slots=True)
class Outage:
    """``service`` fails every call from ``start`` to ``end``: ``livekit`` answers 5xx,
    ``ecs_capacity`` refuses launches (RunTask ``failures[]``: RESOURCE:FARGATE)."""

    service: str
    start: float
    end: float


@dataclass(frozen=True)
class ColdStart:
    """Fargate start to a registered worker: log-normal through ``median_s`` and ``p99_s``.
    The default is a large agent image without lazy loading (median 45 s, p99 90 s)."""

    median_s: float = 45.0
    p99_s: float = 90.0
    min_s: float = 10.0
    max_s: float = 240.0

    def sample(self, rng: random.Random) -> float:
        sigma = math.log(self.p99_s / self.median_s) / Z99
        drawn = self.median_s * math.exp(sigma * rng.gauss(0.0, 1.0))
        return min(max(drawn, self.min_s), self.max_s)


@dataclass(frozen=True)
class Traffic:
    """Room traffic: arrivals over a daily curve (or all within ``arrival_window_s``)."""

    duration_s: float = DAY_SECONDS
    arrival_window_s: float | None = None
    arrival_start_s: float = 60.0
    humans_weights: tuple[float, ...] = (0.5, 0.3, 0.15, 0.05)
    session_median_s: float = 300.0
    session_sigma: float = 1.1
    session_min_s: float = 20.0
    session_max_s: float = 3 * 3600.0
    early_leave_rate: float = 0.2
    refresh_rate: float = 0.15
    blip_rate: float = 0.1
    rejoin_rate: float = 0.12
    rejoin_inside_grace_share: float = 0.5
    sip_share: float = 0.05
    departure_timeout_s: int = 70
    short_departure_share: float = 0.1
    short_departure_timeout_s: int = 20
    reuse_name_share: float = 0.05


@dataclass(frozen=True)
class Faults:
    """What goes wrong: webhook delivery, agent crashes, LiveKit 5xx, Fargate capacity."""

    webhook_delay_median_s: float = 0.2
    webhook_delay_sigma: float = 0.8
    duplicate_rate: float = 0.05
    duplicate_lag_max_s: float = 2.0
    reorder_rate: float = 0.02
    loss_rate: float = 0.01
    crash_rate: float = 0.02
    livekit_error_rate: float = 0.002
    livekit_outages: int = 2
    livekit_outage_s: float = 120.0
    ecs_capacity_error_rate: float = 0.005
    ecs_capacity_outages: int = 1
    ecs_capacity_outage_s: float = 300.0
    cold_start: ColdStart = field(default_factory=ColdStart)

    @classmethod
    def none(cls, cold_start: ColdStart | None = None) -> Faults:
        """Webhooks arrive once and in order, nothing crashes or fails: only cold starts."""
        return cls(
            duplicate_rate=0.0,
            reorder_rate=0.0,
            loss_rate=0.0,
            crash_rate=0.0,
            livekit_error_rate=0.0,
            livekit_outages=0,
            ecs_capacity_error_rate=0.0,
            ecs_capacity_outages=0,
            cold_start=cold_start or ColdStart(),
        )


@dataclass(frozen=True)
class Trace:
    name: str
    seed: int
    rooms: int
    traffic: Traffic
    faults: Faults
    sessions: tuple[Session, ...]
    crashes: tuple[Crash, ...] = ()
    outages: tuple[Outage, ...] = ()

    @property
    def end(self) -> float:
        """When the last session closes."""
        return max((s.closed_at for s in self.sessions), default=0.0)


# --- generation ---------------------------------------------------------------------------


@dataclass
class _Ids:
    participants: int = 0
    people: int = 0
    webhooks: int = 0

    def sid(self) -> str:
        self.participants += 1
        return f"PA_{self.participants:07d}"

    def identity(self) -> str:
        self.people += 1
        return f"user-{self.people:06d}"

    def event(self) -> str:
        self.webhooks += 1
        return f"EV_{self.webhooks:08d}"


def generate(
    seed: int,
    rooms: int = 10_000,
    traffic: Traffic | None = None,
    faults: Faults | None = None,
    name: str = "day",
) -> Trace:
    """A day of traffic (by default) with faults; the same arguments give the same trace."""
    traffic = traffic or Traffic()
    faults = faults or Faults()
    rng = random.Random(seed)
    ids = _Ids()
    arrivals = sorted(_arrival(rng, traffic) for _ in range(rooms))
    sessions: list[Session] = []
    crashes: list[Crash] = []
    closes: dict[str, float] = {}
    session_counts: dict[str, int] = {}
    names: list[str] = []
    for number, opened in enumerate(arrivals):
        room = _room_name(rng, traffic, number, opened, names, closes)
        departure = (
            traffic.short_departure_timeout_s
            if rng.random() < traffic.short_departure_share
            else traffic.departure_timeout_s
        )
        presences, length = _opening(rng, traffic, ids, opened)
        first_index = session_counts.get(room, 0)
        made = _sessions(rng, faults, ids, room, first_index, presences, departure, closes.get(room))
        sessions.extend(made)
        closes[room] = made[-1].closed_at
        session_counts[room] = first_index + len(made)
        if length > 240 and rng.random() < faults.crash_rate:
            crashes.append(Crash(room, round(opened + rng.uniform(120.0, length - 60.0), 3)))
    outages = [
        *_outages(rng, traffic, "livekit", faults.livekit_outages, faults.livekit_outage_s),
        *_outages(rng, traffic, "ecs_capacity", faults.ecs_capacity_outages, faults.ecs_capacity_outage_s),
    ]
    sessions.sort(key=lambda s: (s.opened_at, s.room))
    return Trace(
        name=name,
        seed=seed,
        rooms=rooms,
        traffic=traffic,
        faults=faults,
        sessions=tuple(sessions),
        crashes=tuple(sorted(crashes, key=lambda c: c.at)),
        outages=tuple(outages),
    )


def storm(seed: int, rooms: int = 1_000, window_s: float = 10.0) -> Trace:
    """The launch storm: ``rooms`` rooms open within ``window_s`` seconds and stay at least
    10 minutes, on a clean trace, so waits come from launch limits and cold starts alone."""
    traffic = Traffic(
        duration_s=window_s + 120.0,
        arrival_window_s=window_s,
        session_min_s=600.0,
        rejoin_rate=0.0,
        reuse_name_share=0.0,
        short_departure_share=0.0,
    )
    return generate(seed, rooms, traffic, Faults.none(), name="storm")


def _daily_rate(hour: float) -> float:
    """Relative room openings by hour of day: quiet nights, a late-morning and an afternoon
    peak, a smaller evening one."""
    return (
        0.12
        + math.exp(-(((hour - 11.0) / 2.2) ** 2))
        + 0.85 * math.exp(-(((hour - 15.5) / 2.5) ** 2))
        + 0.35 * math.exp(-(((hour - 20.5) / 1.8) ** 2))
    )


_PEAK_RATE = max(_daily_rate(h / 10) for h in range(240))


def _arrival(rng: random.Random, traffic: Traffic) -> float:
    if traffic.arrival_window_s is not None:
        return round(traffic.arrival_start_s + rng.uniform(0.0, traffic.arrival_window_s), 3)
    while True:  # thinning: a Poisson process with the daily curve, conditioned on the count
        at = rng.uniform(0.0, traffic.duration_s)
        if rng.random() * _PEAK_RATE <= _daily_rate((at / 3600.0) % 24):
            return round(at, 3)


def _room_name(
    rng: random.Random,
    traffic: Traffic,
    number: int,
    opened: float,
    names: list[str],
    closes: dict[str, float],
) -> str:
    """Mostly a fresh name; sometimes one used before whose last session has closed (LiveKit
    reuses names, so sessions must be told apart)."""
    if names and rng.random() < traffic.reuse_name_share:
        for _ in range(5):
            candidate = names[rng.randrange(len(names))]
            if closes[candidate] < opened - ROOM_CREATED_BEFORE_JOIN_S - 1.0:
                return candidate
    name = f"room-{number:05d}"
    names.append(name)
    return name


def _lognormal(rng: random.Random, median: float, sigma: float, low: float, high: float) -> float:
    return min(max(median * math.exp(sigma * rng.gauss(0.0, 1.0)), low), high)


def _opening(rng: random.Random, traffic: Traffic, ids: _Ids, opened: float) -> tuple[list[Presence], float]:
    """The people of one room opening, as connections; returns them and the meeting length."""
    length = _lognormal(
        rng, traffic.session_median_s, traffic.session_sigma, traffic.session_min_s, traffic.session_max_s
    )
    end = opened + length
    count = rng.choices(range(1, len(traffic.humans_weights) + 1), weights=traffic.humans_weights)[0]
    people: list[tuple[str, int, float, float]] = []
    for person in range(count):
        identity = ids.identity()
        kind = SIP_KIND if rng.random() < traffic.sip_share else STANDARD_KIND
        if person == 0:
            join, leave = opened, end
        else:
            join = opened + rng.uniform(0.0, 0.3 * length)
            leave = end - rng.expovariate(1 / 20.0)
            if rng.random() < traffic.early_leave_rate:
                leave = join + rng.uniform(0.2, 0.8) * (end - join)
            leave = max(leave, join + 5.0)
        people.append((identity, kind, join, leave))
    presences = [
        connection
        for identity, kind, join, leave in people
        for connection in _connections(rng, traffic, ids, identity, kind, join, leave)
    ]
    if rng.random() < traffic.rejoin_rate:
        last = max(p.leave for p in presences)
        inside = rng.random() < traffic.rejoin_inside_grace_share
        gap = rng.uniform(5.0, 50.0) if inside else rng.uniform(65.0, 900.0)
        stay = _lognormal(rng, 120.0, 0.8, 10.0, 3600.0)
        identity, kind, _, _ = people[0]
        presences.append(
            Presence(ids.sid(), identity, kind, round(last + gap, 3), round(last + gap + stay, 3))
        )
    return presences, length


def _connections(
    rng: random.Random, traffic: Traffic, ids: _Ids, identity: str, kind: int, join: float, leave: float
) -> list[Presence]:
    """One person's stay as connections: at most one page refresh (the new sid joins just
    before or just after the old one leaves) or one network blip (gone for seconds)."""
    draw = rng.random()
    if leave - join < 30.0 or draw >= traffic.refresh_rate + traffic.blip_rate:
        return [Presence(ids.sid(), identity, kind, round(join, 3), round(leave, 3))]
    at = rng.uniform(join + 10.0, leave - 10.0)
    if draw < traffic.refresh_rate:
        if rng.random() < 0.5:  # new tab first, old one closes a moment later
            old_leave, new_join = at + rng.uniform(0.3, 3.0), at
        else:
            old_leave, new_join = at, at + rng.uniform(0.5, 4.0)
        aborted = False
    else:
        old_leave, new_join = at, min(at + rng.uniform(2.0, 10.0), leave - 1.0)
        aborted = rng.random() < 0.5
    return [
        Presence(ids.sid(), identity, kind, round(join, 3), round(old_leave, 3), aborted),
        Presence(ids.sid(), identity, kind, round(new_join, 3), round(leave, 3)),
    ]


def _sessions(
    rng: random.Random,
    faults: Faults,
    ids: _Ids,
    room: str,
    first_index: int,
    presences: Sequence[Presence],
    departure_timeout: int,
    previous_close: float | None,
) -> list[Session]:
    """Split one room's connections into LiveKit sessions: the room closes ``departure_timeout``
    after it empties, and a later join opens a new session under the same name."""
    groups: list[list[Presence]] = []
    occupied_until = -math.inf
    for presence in sorted(presences, key=lambda p: (p.join, p.sid)):
        if groups and presence.join < occupied_until + departure_timeout:
            groups[-1].append(presence)
            occupied_until = max(occupied_until, presence.leave)
        else:
            groups.append([presence])
            occupied_until = presence.leave
    sessions: list[Session] = []
    closed = previous_close if previous_close is not None else -math.inf
    for offset, group in enumerate(groups):
        opened = round(max(group[0].join - ROOM_CREATED_BEFORE_JOIN_S, closed + 0.01), 3)
        closed = round(max(p.leave for p in group) + departure_timeout, 3)
        session = Session(room, first_index + offset, opened, closed, departure_timeout, tuple(group), ())
        sessions.append(replace(session, webhooks=tuple(_webhooks(rng, faults, ids.event, session))))
    return sessions


def _webhooks(
    rng: random.Random, faults: Faults, new_id: Callable[[], str], session: Session
) -> list[Webhook]:
    events: list[tuple[float, int, str, str | None]] = [(session.opened_at, 0, "room_started", None)]
    for p in session.presences:
        events.append((p.join, 1, "participant_joined", p.sid))
        left = "participant_connection_aborted" if p.aborted else "participant_left"
        events.append((p.leave, 1, left, p.sid))
    events.append((session.closed_at, 2, "room_finished", None))
    events.sort(key=lambda e: (e[0], e[1]))
    return [Webhook(new_id(), kind, at, sid, _deliveries(rng, faults, at)) for at, _, kind, sid in events]


def _deliveries(rng: random.Random, faults: Faults, at: float) -> tuple[float, ...]:
    """When LiveKit attempts one webhook: after a delay, sometimes late enough to pass the
    room's next event (reordered), sometimes twice (a retry after a slow answer), sometimes never."""
    if rng.random() < faults.loss_rate:
        return ()
    first = at + _lognormal(rng, faults.webhook_delay_median_s, faults.webhook_delay_sigma, 0.01, 10.0)
    if rng.random() < faults.reorder_rate:
        first += rng.uniform(2.0, 15.0)
    attempts = [first]
    if rng.random() < faults.duplicate_rate:
        attempts.append(first + rng.uniform(0.0, faults.duplicate_lag_max_s))
    return tuple(round(a, 3) for a in attempts)


def _outages(rng: random.Random, traffic: Traffic, service: str, count: int, length: float) -> list[Outage]:
    outages = []
    for _ in range(count):
        start = round(rng.uniform(0.05, 0.95) * traffic.duration_s, 3)
        outages.append(Outage(service, start, round(start + length, 3)))
    return sorted(outages, key=lambda o: o.start)


# --- hand-written traces (tests, examples) --------------------------------------------------


def session(
    room: str,
    presences: Iterable[tuple[str, float, float]],
    departure_timeout: int = 70,
    index: int = 0,
    delay: float = 0.1,
    identity: str | None = None,
) -> Session:
    """A session from ``(sid, join, leave)`` triples; every webhook arrives once, ``delay`` late."""
    made = tuple(
        Presence(sid, identity or f"human-{sid}", STANDARD_KIND, join, leave)
        for sid, join, leave in presences
    )
    opened = min(p.join for p in made) - ROOM_CREATED_BEFORE_JOIN_S
    closed = max(p.leave for p in made) + departure_timeout
    draft = Session(room, index, opened, closed, departure_timeout, made, ())
    numbers = itertools.count(1)
    events = _webhooks(random.Random(0), Faults.none(), lambda: f"EV_{room}_{index}_{next(numbers)}", draft)
    return replace(draft, webhooks=tuple(replace(w, deliveries=(round(w.at + delay, 3),)) for w in events))


def hand_trace(
    sessions: Iterable[Session],
    crashes: Iterable[Crash] = (),
    outages: Iterable[Outage] = (),
    cold_start: ColdStart | None = None,
) -> Trace:
    """A trace made of the given sessions; faults only as listed, cold starts as given."""
    made = tuple(sorted(sessions, key=lambda s: (s.opened_at, s.room)))
    return Trace(
        name="hand",
        seed=0,
        rooms=len({s.room for s in made}),
        traffic=Traffic(),
        faults=Faults.none(cold_start),
        sessions=made,
        crashes=tuple(crashes),
        outages=tuple(outages),
    )


# --- JSON lines -------------------------------------------------------------------------------


def to_lines(trace: Trace) -> Iterator[str]:
    header = {
        "kind": "trace",
        "version": TRACE_VERSION,
        "name": trace.name,
        "seed": trace.seed,
        "rooms": trace.rooms,
        "traffic": asdict(trace.traffic),
        "faults": asdict(trace.faults),
    }
    yield json.dumps(header, separators=(",", ":"))
    for s in trace.sessions:
        yield json.dumps(
            {
                "kind": "session",
                "room": s.room,
                "index": s.index,
                "opened_at": s.opened_at,
                "closed_at": s.closed_at,
                "departure_timeout": s.departure_timeout,
                "presences": [[p.sid, p.identity, p.kind, p.join, p.leave, p.aborted] for p in s.presences],
                "webhooks": [[w.id, w.event, w.at, w.sid, list(w.deliveries)] for w in s.webhooks],
            },
            separators=(",", ":"),
        )
    for c in trace.crashes:
        yield json.dumps({"kind": "crash", "room": c.room, "at": c.at}, separators=(",", ":"))
    for o in trace.outages:
        yield json.dumps(
            {"kind": "outage", "service": o.service, "start": o.start, "end": o.end}, separators=(",", ":")
        )


def from_lines(lines: Iterable[str]) -> Trace:
    header: dict[str, Any] | None = None
    sessions: list[Session] = []
    crashes: list[Crash] = []
    outages: list[Outage] = []
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        kind = item["kind"]
        if kind == "trace":
            if item["version"] != TRACE_VERSION:
                raise ValueError(f"trace version {item['version']} is not {TRACE_VERSION}")
            header = item
        elif kind == "session":
            sessions.append(
                Session(
                    room=item["room"],
                    index=item["index"],
                    opened_at=item["opened_at"],
                    closed_at=item["closed_at"],
                    departure_timeout=item["departure_timeout"],
                    presences=tuple(Presence(*p) for p in item["presences"]),
                    webhooks=tuple(Webhook(w[0], w[1], w[2], w[3], tuple(w[4])) for w in item["webhooks"]),
                )
            )
        elif kind == "crash":
            crashes.append(Crash(item["room"], item["at"]))
        elif kind == "outage":
            outages.append(Outage(item["service"], item["start"], item["end"]))
        else:
            raise ValueError(f"unknown trace line kind {kind!r}")
    if header is None:
        raise ValueError("trace has no header line")
    traffic = dict(header["traffic"])
    traffic["humans_weights"] = tuple(traffic["humans_weights"])
    faults = dict(header["faults"])
    faults["cold_start"] = ColdStart(**faults["cold_start"])
    return Trace(
        name=header["name"],
        seed=header["seed"],
        rooms=header["rooms"],
        traffic=Traffic(**traffic),
        faults=Faults(**faults),
        sessions=tuple(sessions),
        crashes=tuple(crashes),
        outages=tuple(outages),
    )


def write(trace: Trace, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for line in to_lines(trace):
            out.write(line + "\n")
    return path


def read(path: Path) -> Trace:
    with path.open(encoding="utf-8") as lines:
        return from_lines(lines)
