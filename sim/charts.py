"""The report's charts, as PNG files beside the JSON (matplotlib, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sim.report import PolicyResult

COLOURS = {
    "default": "#1b7837",
    "ttl_sweep": "#d6604d",
    "self_terminating": "#4393c3",
    "manager_gc": "#9970ab",
    "always_on": "#878787",
    "warm_1": "#e08214",
    "warm_2": "#b35806",
    "adaptive": "#35978f",
    "pooled_4": "#c51b7d",
    "pooled_8": "#762a83",
}
FALLBACK = ("#e08214", "#35978f", "#bf812d", "#c51b7d")
DPI = 120
# Overlapping curves stay visible through their dash patterns.
LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))
# The storm chart's x axis stops here; later arrivals still count in the curves' heights.
STORM_AXIS_MAX_S = 900.0


def colour(name: str, index: int) -> str:
    return COLOURS.get(name, FALLBACK[index % len(FALLBACK)])


def cost_vs_wait(day: Mapping[str, PolicyResult], path: Path) -> Path:
    """Each policy as a point: what it costs against how long humans wait (p95, bar p50 to p99)."""
    fig, ax = plt.subplots(figsize=(9, 5.6))
    points = []
    for index, (name, result) in enumerate(day.items()):
        f = result.figures
        p50, p95, p99 = f["wait_p50_s"], f["wait_p95_s"], f["wait_p99_s"]
        cost = f["cost_per_1000_room_hours_usd"]
        ax.errorbar(
            [p95],
            [cost],
            xerr=[[p95 - p50], [p99 - p95]],
            fmt="o",
            markersize=9,
            capsize=4,
            color=colour(name, index),
            label=f"{name}: ${cost:,.0f}, p95 {p95:.0f} s",
        )
        points.append((cost, p95, p99, name, index))
    top = max((p[0] for p in points), default=1.0) * 1.15
    right = max((p[2] for p in points), default=1.0) * 1.3 + 5
    # Labels right of the bars, nudged apart where costs are close, each tied to its dot.
    gap, last = top * 0.06, -math.inf
    for cost, p95, p99, name, index in sorted(points):
        at = max(cost, last + gap)
        ax.annotate(
            name,
            xy=(p95, cost),
            xytext=(max(p99, p95) + right * 0.03, at),
            va="center",
            fontsize=9,
            color=colour(name, index),
            arrowprops={"arrowstyle": "-", "color": colour(name, index), "linewidth": 0.6},
        )
        last = at
    ax.set_xlim(0, right)
    ax.set_ylim(0, top)
    ax.set_xlabel("human wait for an agent after joining, s (dot: p95; bar: p50 to p99)")
    ax.set_ylabel("USD per 1,000 room-hours")
    ax.set_title("Cost against wait, per policy, on the same day of traffic")
    ax.grid(True, alpha=0.3)
    # Below the axes: with eight rows, a legend inside covers the labels of the costly ones.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=8, frameon=False)
    return _save(fig, path)


def agents_over_time(day: Mapping[str, PolicyResult], path: Path) -> Path:
    """Per policy, one small chart through the day: agent tasks alive minus rooms with humans.

    Above zero is what a policy pays for beyond what is wanted (idle or warm agents); below zero
    is rooms whose humans have no agent yet. Eight overlaid lines hid both; a shared scale keeps
    the policies comparable.
    """
    names = list(day)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.25 * len(names) + 1), sharex=True, sharey=True)
    rows = [axes] if len(names) == 1 else list(axes)
    for index, (ax, name) in enumerate(zip(rows, names, strict=True)):
        samples = day[name].samples
        hours = [s.at / 3600 for s in samples]
        excess = [s.tasks - s.occupied_rooms for s in samples]
        ax.fill_between(hours, excess, where=[e >= 0 for e in excess], color=colour(name, index), step="post")
        ax.fill_between(hours, excess, where=[e < 0 for e in excess], color="#b2182b", step="post")
        ax.axhline(0, color="black", linewidth=0.6)
        mean = sum(excess) / len(excess) if excess else 0.0
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.text(
            0.995,
            0.92,
            f"mean {mean:+.1f}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.grid(True, alpha=0.3)
    rows[-1].set_xlabel("hour of the simulated day")
    rows[-1].set_xlim(0, max((s.at / 3600 for s in day[names[-1]].samples), default=1))
    fig.suptitle(
        "Agent tasks alive minus rooms with humans (above 0: agents paid for beyond need;"
        " red, below 0: rooms waiting for an agent)",
        fontsize=10,
    )
    return _save(fig, path)


def storm_waits(storm: Mapping[str, PolicyResult], path: Path, window_s: float) -> Path:
    """Share of the storm's rooms with an agent, by seconds since their first human joined."""
    fig, ax = plt.subplots(figsize=(8, 5))
    curves = []
    for index, (name, result) in enumerate(storm.items()):
        waits = sorted(w for w in result.first_waits if math.isfinite(w))
        total = len(result.first_waits)
        if total:
            curves.append((index, name, waits, total))
    longest = max((w[-1] for _, _, w, _ in curves if w), default=1.0)
    right = min(longest * 1.05, STORM_AXIS_MAX_S)
    for index, name, waits, total in curves:
        never = total - len(waits)
        xs = [0.0, *waits, right]
        ys = [0.0, *((i + 1) / total for i in range(len(waits))), len(waits) / total]
        label = f"{name} ({never:,} never served)" if never else name
        style = LINE_STYLES[index % len(LINE_STYLES)]
        ax.step(xs, ys, where="post", color=colour(name, index), linestyle=style, linewidth=1.8, label=label)
    ax.set_xlim(-right * 0.02, right)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("seconds from a room's first join to its agent")
    ax.set_ylabel("share of rooms with an agent")
    rooms = len(next(iter(storm.values())).first_waits) if storm else 0
    ax.set_title(f"Launch storm: {rooms:,} rooms opening within {window_s:g} s")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # No software version in the file: the seeded reference charts in docs/ change only when
    # the figures do.
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path
