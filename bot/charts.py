"""The daily summary's chart: a pure function of series to PNG bytes (matplotlib).

Top panel: the rollout percentage as a step line, with markers where it advanced, paused
or rolled back. One panel per gate below: its value, and its threshold as a red band over
the failing side.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    threshold: float | None = None
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
        _gate_panel(ax, gate)
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
    formatter = mdates.DateFormatter("%d %b %H:%M")  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_formatter(formatter)
    fig.suptitle(data.title, fontsize=14, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


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


def _gate_panel(ax: Axes, gate: GateSeries) -> None:
    if gate.points:
        ax.plot(
            _x([t for t, _ in gate.points]),
            [v for _, v in gate.points],
            color="#424242",
            linewidth=1.4,
        )
    else:
        ax.text(
            0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#666666"
        )
    if gate.threshold is not None:
        ax.axhline(gate.threshold, color="#c62828", linewidth=1, linestyle="--")
        values = [v for _, v in gate.points] + [gate.threshold]
        span = (max(values) - min(min(values), 0)) or abs(gate.threshold) or 1.0
        top = max(values) + span * 0.15
        if gate.fail_above:
            ax.axhspan(gate.threshold, top, color="#c62828", alpha=0.08)
            ax.set_ylim(min(min(values), 0), top)
        else:
            bottom = min(values) - span * 0.15
            ax.axhspan(bottom, gate.threshold, color="#c62828", alpha=0.08)
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
