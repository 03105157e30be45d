"""The daily summary's chart: a pure function of series to PNG bytes (matplotlib).

Top panel: the rollout percentage as a step line, with markers where it advanced, paused
or rolled back. One panel per gate below: its value, and its threshold as a red band over
the failing side. The threshold is a step series: it changes with the tier of the exposure,
so the band steps where the percentage crossed into another tier. Times are shown in the
chart's timezone, which the time axis names.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # drawn without pyplot: no global state, no GUI

WIDTH_PX, PANEL_PX, DPI = 1200, 260, 100
MAX_GATE_PANELS = 4
MARKER_STYLE = {
    "start": ("#2e7d32", "^"),
    "advance": ("#2e7d32", "^"),
    "resume": ("#1565c0", ">"),
    "pause": ("#f9a825", "s"),
    "rollback": ("#c62828", "v"),
    "complete": ("#2e7d32", "*"),
}


@dataclass(frozen=True)
class GateSeries:
    name: str
    points: Sequence[tuple[datetime, float]]
    # each change of the threshold, in order; None: no threshold from then on
    thresholds: Sequence[tuple[datetime, float | None]] = ()
    fail_above: bool = True
    unit: str = ""


@dataclass(frozen=True)
class ChartData:
    title: str
    start: datetime
    end: datetime
    percent: Sequence[tuple[datetime, int]]  # each change, in order
    gates: Sequence[GateSeries] = ()
    markers: Sequence[tuple[datetime, str]] = field(default_factory=tuple)  # (when, verb)
    missing: str = ""  # a part that could not be drawn, and why
    zone: tzinfo = UTC  # the timezone the time axis is labelled in


def chart_size(data: ChartData) -> tuple[int, int]:
    """The PNG's size in pixels."""
    panels = 1 + max(1, min(len(data.gates), MAX_GATE_PANELS))
    return WIDTH_PX, PANEL_PX * panels


def render_chart(data: ChartData) -> bytes:
    width, height = chart_size(data)
    panels = height // PANEL_PX
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    _percent_panel(axes[0], data)
    gates = list(data.gates)[:MAX_GATE_PANELS]
    for ax, gate in zip(axes[1:], gates, strict=False):
        _gate_panel(ax, gate, data.end)
    if not gates:
        note = data.missing or "no gates configured"
        axes[1].text(
            0.5,
            0.5,
            note,
            ha="center",
            va="center",
            transform=axes[1].transAxes,
            color="#666666",
            fontsize=11,
        )
        axes[1].set_yticks([])
    axes[-1].set_xlim(_x([data.start, data.end]))
    locator = mdates.AutoDateLocator(tz=data.zone)  # type: ignore[no-untyped-call]
    formatter = mdates.DateFormatter("%d %b %H:%M", tz=data.zone)  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(formatter)
    axes[-1].set_xlabel(f"time ({zone_name(data.zone)})")
    fig.suptitle(data.title, fontsize=14, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def zone_name(zone: tzinfo) -> str:
    """`Europe/Paris` for a ZoneInfo, `UTC` for UTC."""
    return str(getattr(zone, "key", None) or zone)


def _x(times: Sequence[datetime]) -> Any:
    """Matplotlib's own date numbers."""
    return mdates.date2num(list(times))  # type: ignore[no-untyped-call]


def _percent_panel(ax: Axes, data: ChartData) -> None:
    points = [p for p in data.percent if p[0] <= data.end]
    if points:
        times = [t for t, _ in points] + [data.end]
        values = [v for _, v in points] + [points[-1][1]]
        ax.step(_x(times), values, where="post", color="#1565c0", linewidth=2.2)
        ax.fill_between(_x(times), values, step="post", color="#1565c0", alpha=0.12)
    for moment, verb in data.markers:
        color, shape = MARKER_STYLE.get(verb, ("#555555", "o"))
        level = _percent_at(points, moment)
        ax.plot(_x([moment]), [level], marker=shape, color=color, markersize=10, linestyle="none")
        ax.annotate(
            verb,
            (float(_x([moment])[0]), level),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=8,
            color=color,
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("traffic %")
    ax.grid(alpha=0.3)


def _gate_panel(ax: Axes, gate: GateSeries, end: datetime) -> None:
    values = [v for _, v in gate.points]
    if gate.points:
        ax.plot(_x([t for t, _ in gate.points]), values, color="#424242", linewidth=1.4)
    else:
        ax.text(
            0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#666666"
        )
    steps = [(t, v) for t, v in gate.thresholds if t <= end]
    known = [v for _, v in steps if v is not None]
    if known:
        times = _x([t for t, _ in steps] + [end])
        levels = [math.nan if v is None else v for _, v in steps]
        levels.append(levels[-1])
        seen = values + known
        span = (max(seen) - min(min(seen), 0)) or abs(max(known)) or 1.0
        top = max(seen) + span * 0.15
        bottom = min(min(seen), 0) if gate.fail_above else min(seen) - span * 0.15
        ax.step(times, levels, where="post", color="#c62828", linewidth=1, linestyle="--")
        lower, upper = (levels, top) if gate.fail_above else (bottom, levels)
        ax.fill_between(times, lower, upper, step="post", color="#c62828", alpha=0.08, linewidth=0)
        for when, level in steps:
            if level is not None:
                ax.annotate(
                    f"{level:g}",
                    (float(_x([when])[0]), level),
                    textcoords="offset points",
                    xytext=(4, 3 if gate.fail_above else -10),
                    fontsize=8,
                    color="#c62828",
                )
        ax.set_ylim(bottom, top)
    label = gate.name + (f" ({gate.unit})" if gate.unit else "")
    ax.set_ylabel(label, fontsize=9)
    ax.grid(alpha=0.3)


def _percent_at(points: Sequence[tuple[datetime, int]], moment: datetime) -> float:
    level = 0.0
    for when, value in points:
        if when <= moment:
            level = value
    return level
