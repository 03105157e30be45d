"""The daily summary's chart: a pure function of series to PNG bytes (matplotlib).

Top panel: the rollout percentage as a step line, with markers where it advanced, paused
or rolled back. Each marker's label is placed where it overlaps no other label: above the
marker, else staggered higher (or below, near the top), else folded into the label before
it ("pause, resume"). One panel per gate below: its value, and its threshold as a red band
over the failing side. The threshold is a step series: it changes with the tier of the
exposure, so the band steps where the percentage crossed into another tier. Times are shown
in the chart's timezone, which the time axis names. `alt_text` says the same in a sentence,
for people who cannot see the picture.
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
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # drawn without pyplot: no global state, no GUI
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

WIDTH_PX, PANEL_PX, DPI = 1200, 260, 100
MAX_GATE_PANELS = 4
MARKER_LABEL = "marker-label"  # the gid of each marker's label, for whoever reads the figure
LABEL_FONT = 8
MARKER_SIZE = 10  # points
LABEL_LEVELS = 4  # label positions tried above (or below) a marker before folding it
ALT_TEXT_LIMIT = 1000  # files.getUploadURLExternal refuses a longer alt_txt
MARKER_WORDS = {
    "start": "started",
    "advance": "advanced",
    "resume": "resumed",
    "pause": "paused",
    "rollback": "rolled back",
    "complete": "completed",
}
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
    buffer = io.BytesIO()
    build_figure(data).savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def build_figure(data: ChartData) -> Figure:
    """The chart as a matplotlib figure, laid out and with its labels placed."""
    width, height = chart_size(data)
    panels = height // PANEL_PX
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    points = _percent_panel(axes[0], data)
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
    _label_markers(axes[0], fig.canvas.get_renderer(), data, points)  # type: ignore[attr-defined]
    return fig


def zone_name(zone: tzinfo) -> str:
    """`Europe/Paris` for a ZoneInfo, `UTC` for UTC."""
    return str(getattr(zone, "key", None) or zone)


def _x(times: Sequence[datetime]) -> Any:
    """Matplotlib's own date numbers."""
    return mdates.date2num(list(times))  # type: ignore[no-untyped-call]


def _percent_panel(ax: Axes, data: ChartData) -> list[tuple[datetime, int]]:
    points = [p for p in data.percent if p[0] <= data.end]
    if points:
        times = [t for t, _ in points] + [data.end]
        values = [v for _, v in points] + [points[-1][1]]
        ax.step(_x(times), values, where="post", color="#1565c0", linewidth=2.2)
        ax.fill_between(_x(times), values, step="post", color="#1565c0", alpha=0.12)
    for moment, verb in data.markers:
        color, shape = MARKER_STYLE.get(verb, ("#555555", "o"))
        level = _percent_at(points, moment)
        ax.plot(
            _x([moment]), [level], marker=shape, color=color, markersize=MARKER_SIZE,
            linestyle="none",
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("traffic %")
    ax.grid(alpha=0.3)
    return points


@dataclass
class _Label:
    """One label over one or more markers close together: where it hangs, what it says."""

    x: float
    y: float
    color: str
    verbs: list[str]
    annotation: Annotation | None = None
    box: Bbox | None = None

    @property
    def text(self) -> str:
        return ", ".join(_counted(self.verbs))


def _counted(verbs: Sequence[str]) -> list[str]:
    """["pause", "resume", "pause"] → ["pause ×2", "resume"]: each verb once, in order."""
    seen = {verb: verbs.count(verb) for verb in verbs}
    return [f"{verb} ×{count}" if count > 1 else verb for verb, count in seen.items()]


def _label_markers(
    ax: Axes, renderer: RendererBase, data: ChartData, points: Sequence[tuple[datetime, int]]
) -> None:
    """Label each marker where its label overlaps no other one and stays inside the panel:
    just above it, else staggered higher (below, for a marker near the top), else folded
    into the label before it."""
    inside = ax.get_window_extent(renderer)
    markers = sorted(
        (m for m in data.markers if data.start <= m[0] <= data.end), key=lambda m: m[0]
    )
    # The markers themselves are in the way too: a label never hides one.
    half = MARKER_SIZE * ax.figure.dpi / 72 / 2
    shapes = []
    for moment, _verb in markers:
        x, y = ax.transData.transform((float(_x([moment])[0]), _percent_at(points, moment)))
        shapes.append(Bbox.from_extents(x - half, y - half, x + half, y + half))
    placed: list[_Label] = []
    for moment, verb in markers:
        color, _ = MARKER_STYLE.get(verb, ("#555555", "o"))
        label = _Label(float(_x([moment])[0]), _percent_at(points, moment), color, [verb])
        if _place(ax, renderer, label, placed, inside, shapes):
            placed.append(label)
            continue
        # No room: it joins the label before it, which is placed again with both words.
        while placed:
            before = placed.pop()
            _remove(before)
            before.verbs += label.verbs
            if _place(ax, renderer, before, placed, inside, shapes):
                placed.append(before)
                break
            label = before
        else:
            _place(ax, renderer, label, placed, inside, shapes, force=True)
            placed.append(label)


def _place(
    ax: Axes,
    renderer: RendererBase,
    label: _Label,
    placed: Sequence[_Label],
    inside: Bbox,
    shapes: Sequence[Bbox] = (),
    *,
    force: bool = False,
) -> bool:
    """Try the label's positions in turn; keep the first that is free. With `force`, the
    first position is kept whatever it overlaps (nothing else was left)."""
    upward = label.y <= 75
    offsets = [7 + 11 * level for level in range(LABEL_LEVELS)]
    below = [-(16 + 11 * level) for level in range(LABEL_LEVELS)]
    for dy in (offsets + below) if upward else (below + offsets):
        annotation = ax.annotate(
            label.text,
            (label.x, label.y),
            textcoords="offset points",
            xytext=(4, dy),
            fontsize=LABEL_FONT,
            color=label.color,
            gid=MARKER_LABEL,
        )
        box = annotation.get_window_extent(renderer)
        taken = [other.box for other in placed if other.box is not None] + list(shapes)
        free = not any(_overlap(box, other) for other in taken)
        within = box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and (
            box.y1 <= inside.y1
        )
        if force or (free and within):
            label.annotation, label.box = annotation, box
            return True
        annotation.remove()
    return False


def _remove(label: _Label) -> None:
    if label.annotation is not None:
        label.annotation.remove()
    label.annotation = label.box = None


def _overlap(a: Bbox, b: Bbox, pad: float = 1.0) -> bool:
    return bool(
        a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad
    )


def alt_text(data: ChartData) -> str:
    """The chart in a sentence or three, for a screen reader (Slack's `alt_txt`)."""
    zone = data.zone
    span = data.end - data.start
    hours = round(span.total_seconds() / 3600)

    def when(moment: datetime) -> str:
        local = moment.astimezone(zone)
        same_day = local.date() == data.end.astimezone(zone).date()
        return local.strftime("%H:%M" if same_day else "%d %b %H:%M")

    points = [p for p in data.percent if data.start <= p[0] <= data.end] or list(data.percent)
    first = _percent_at(data.percent, data.start) if data.percent else 0
    last = points[-1][1] if points else 0
    day = "%d %b %H:%M"
    lines = [
        f"Chart of {data.title.split(' · ')[0]} over the last {hours} h, from "
        f"{data.start.astimezone(zone).strftime(day)} to {data.end.astimezone(zone).strftime(day)}"
        f" ({zone_name(zone)})."
    ]
    traffic = f"Top: the share of traffic, {first:g} % at the start and {last} % at the end"
    events = [
        f"{MARKER_WORDS.get(verb, verb)} at {when(moment)}"
        for moment, verb in sorted(data.markers)
        if data.start <= moment <= data.end
    ]
    if len(events) > 8:
        events = [*events[:7], f"and {len(events) - 7} more changes"]
    lines.append(traffic + (f"; {', '.join(events)}." if events else "; no change."))
    gates = list(data.gates)[:MAX_GATE_PANELS]
    if gates:
        lines.append("Below, one panel per gate against its threshold: " + "; ".join(
            _gate_words(g) for g in gates
        ) + ".")
    elif data.missing:
        lines.append(f"No gate is drawn: {data.missing}.")
    text = " ".join(lines)
    return text if len(text) <= ALT_TEXT_LIMIT else text[: ALT_TEXT_LIMIT - 1] + "…"


def _gate_words(gate: GateSeries) -> str:
    values = [v for _, v in gate.points]
    if not values:
        return f"{gate.name}, no data"
    worst = max(values) if gate.fail_above else min(values)
    word = "highest" if gate.fail_above else "lowest"
    limits = [v for _, v in gate.thresholds if v is not None]
    if not limits:
        return f"{gate.name}, {word} {worst:.4g}{gate.unit}"
    crossed = any(
        (v > limit if gate.fail_above else v < limit)
        for (when, v) in gate.points
        for limit in [_threshold_at(gate.thresholds, when)]
        if limit is not None
    )
    bad, good = ("above", "below") if gate.fail_above else ("below", "above")
    verdict = f"went {bad} its threshold" if crossed else f"stayed {good} its threshold"
    return f"{gate.name}, {word} {worst:.4g}{gate.unit}, {verdict}"


def _threshold_at(steps: Sequence[tuple[datetime, float | None]], moment: datetime) -> float | None:
    level: float | None = None
    for when, value in steps:
        if when <= moment:
            level = value
    return level


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
