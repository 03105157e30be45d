"""A rehearsal's answer: what would have happened, each gate against its thresholds, the
missing history, and the chart's data. Pure. The same lines make the Slack message (Block
Kit, mrkdwn) and the terminal's plain text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from bot.domain.durations import format_duration
from bot.domain.gates import GateView, fmt_value
from bot.domain.rehearsal import HOLDS, Rehearsal, Step
from bot.domain.rehearsal_stats import GateStats
from bot.render.blocks import SECTION_LIMIT, button, context, escape, section
from bot.render.charts import ChartData, GateSeries

POST_IN_THREAD = "rehearsal_post_in_thread"
MAX_STEPS = 25  # timeline lines shown; the rest are counted
MAX_BLOCKS = 50  # Slack's limit per message
HISTORY_SLACK = 3  # intervals of missing history at the start that are not worth a word

_VERBS = {
    "start": "start",
    "advance": "advance",
    "complete": "complete",
    "rollback": "ROLL BACK",
    "hold": "hold (on-call paged)",
    "hold_start": "held",
    "hold_change": "held",
    "hold_end": "hold ends",
    "wait": "wait",
}


@dataclass(frozen=True)
class RehearsalValue:
    """What the "Post in thread" button carries: the rehearsal to post again, exactly."""

    rollout: str
    plan: str
    start: datetime
    end: datetime

    def encode(self) -> str:
        data = {
            "r": self.rollout,
            "p": self.plan,
            "s": int(self.start.timestamp()),
            "e": int(self.end.timestamp()),
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> RehearsalValue:
        """Raises ValueError on anything that a button of ours could not have sent."""
        from datetime import UTC

        try:
            data = json.loads(raw)
            rollout, plan, start, end = data["r"], data["p"], data["s"], data["e"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a rehearsal button value: {raw[:80]!r}") from exc
        if not (isinstance(rollout, str) and isinstance(plan, str)) or not all(
            type(v) is int for v in (start, end)
        ):
            raise ValueError(f"not a rehearsal button value: {raw[:80]!r}")
        try:
            return cls(
                rollout, plan, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
            )
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"not a rehearsal button value: {raw[:80]!r}") from exc


def started_text(name: str, period: timedelta, gates: int) -> str:
    """The immediate answer while the rehearsal runs."""
    return (
        f"Rehearsing {format_duration(period)} of {gates} gate{'s' if gates != 1 else ''} "
        f"for {escape(name)}… the result follows here when it is done."
    )


def when(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %H:%M")


def headline(rehearsal: Rehearsal, gates: int, zone: tzinfo) -> str:
    span = format_duration(rehearsal.end - rehearsal.start)
    return (
        f"Rehearsal of {rehearsal.name} over {span} ({when(rehearsal.start, zone)} → "
        f"{when(rehearsal.end, zone)} {getattr(zone, 'key', zone)}), plan "
        f"{rehearsal.plan.name}, {gates} gate{'s' if gates != 1 else ''}"
    )


def assumptions(rehearsal: Rehearsal) -> str:
    words = (
        "Replayed through the live bot's own rules: it starts at the period's start, "
        "advances as soon as each soak ends green, and stops at a rollback"
    )
    if rehearsal.two_person:
        words += "; a step the two-person rule would ask a second person for is taken as confirmed"
    return words + "."


def step_line(step: Step, zone: tzinfo) -> str:
    verb = _VERBS.get(step.verb, step.verb)
    moved = (
        f"{step.from_percent} → {step.to_percent} %"
        if step.from_percent != step.to_percent
        else f"at {step.to_percent} %"
    )
    gates = "; ".join(gate_words(v) for v in step.gates)
    reason = f" — {step.reason}" if step.reason and step.verb not in ("start",) else ""
    line = f"{when(step.at, zone)} · {verb} {moved}{reason}"
    return f"{line} · {gates}" if gates else line


def gate_words(view: GateView) -> str:
    value = "no data" if view.value is None else fmt_value(view.value)
    threshold = f"threshold {fmt_value(view.threshold)}" if view.threshold is not None else ""
    window = f"window {format_duration(view.window)}" if view.window else ""
    extra = ", ".join(w for w in (threshold, window) if w)
    return f"{view.name} {value}" + (f" ({extra})" if extra else "")


def timeline(rehearsal: Rehearsal, zone: tzinfo) -> list[str]:
    steps = list(rehearsal.steps)
    # Holds starting and ending every few minutes are one line each: keep the moves and
    # the first holds, count the others.
    shown = [s for s in steps if s.verb not in HOLDS]
    holds = [s for s in steps if s.verb in HOLDS]
    room = max(0, MAX_STEPS - len(shown))
    keep = {id(s) for s in shown} | {id(s) for s in holds[:room]}
    lines = [step_line(s, zone) for s in steps if id(s) in keep]
    hidden = len(steps) - len(lines)
    if hidden:
        lines.append(f"… and {hidden} more hold{'s' if hidden != 1 else ''} not shown")
    return lines


def stats_lines(stats: GateStats, zone: tzinfo) -> list[str]:
    side = "max" if stats.fail_above else "min"
    lines = [f"{stats.name}: {_share(stats.no_data_share)} of the period without data"]
    for tier in stats.tiers:
        if tier.threshold is None:
            continue
        if not tier.measured:
            lines.append(f"  {tier.tier.value} (threshold {fmt_value(tier.threshold)}): no values")
            continue
        near = tier.nearest_miss
        miss = f"; nearest miss {fmt_value(near[1])} at {when(near[0], zone)}" if near else ""
        red = (
            f"red {_share(tier.red_share)} of the time ({tier.episodes} "
            f"episode{'s' if tier.episodes != 1 else ''})"
            if tier.red
            else "never red"
        )
        lines.append(
            f"  {tier.tier.value} (threshold {fmt_value(tier.threshold)}): "
            f"p50 {fmt_value(tier.p50)}, p95 {fmt_value(tier.p95)}, {side} "
            f"{fmt_value(tier.worst)}; {red}{miss}"
        )
    return lines


def missing_lines(
    rehearsal: Rehearsal, stats: Sequence[GateStats], interval: dict[str, timedelta],
    retention: str, zone: tzinfo,
) -> list[str]:
    """History Prometheus does not hold: said plainly, with how far back it goes."""
    kept = f" (it keeps {retention})" if retention else ""
    lines = []
    for gate in stats:
        step = interval.get(gate.name, timedelta(seconds=30))
        if gate.first_sample is None:
            lines.append(f"Prometheus holds no data for {gate.name} in this period{kept}.")
        elif gate.first_sample - rehearsal.start > HISTORY_SLACK * step:
            lines.append(
                f"Prometheus holds {gate.name} only from {when(gate.first_sample, zone)}{kept}: "
                "the time before counts as no data."
            )
        if gate.source_down:
            lines.append(
                f"Prometheus could not answer for part of {gate.name}'s history "
                f"({_share(gate.source_down / max(1, gate.expected))} of the period)."
            )
    return lines


def report_lines(
    rehearsal: Rehearsal,
    stats: Sequence[GateStats],
    zone: tzinfo,
    *,
    intervals: dict[str, timedelta] | None = None,
    retention: str = "",
) -> list[str]:
    """The whole answer, as plain lines (the terminal prints them as they are)."""
    lines = [headline(rehearsal, len(stats), zone), rehearsal.outcome]
    if rehearsal.full_at is not None:
        lines.append(f"100 % reached {when(rehearsal.full_at, zone)}.")
    lines += missing_lines(rehearsal, stats, intervals or {}, retention, zone)
    lines += ["", "What would have happened:", *timeline(rehearsal, zone), ""]
    lines.append("Each gate over the period, against each tier's threshold:")
    for gate in stats:
        lines += stats_lines(gate, zone)
    lines += ["", assumptions(rehearsal)]
    return lines


def rehearsal_message(
    rehearsal: Rehearsal,
    stats: Sequence[GateStats],
    zone: tzinfo,
    *,
    intervals: dict[str, timedelta] | None = None,
    retention: str = "",
    with_button: bool = True,
) -> dict[str, Any]:
    """The Slack message: the same lines in sections, and a button to post it in the
    rollout's thread."""
    lines = report_lines(rehearsal, stats, zone, intervals=intervals, retention=retention)
    text = "\n".join(lines)
    blocks = [section(f"*{escape(lines[0])}*\n{escape(lines[1])}")]
    chunk: list[str] = []
    for line in lines[2:]:
        if sum(len(c) + 1 for c in chunk) + len(line) > SECTION_LIMIT - 100:
            blocks.append(section(escape("\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section(escape("\n".join(chunk)).strip() or " "))
    blocks = blocks[: MAX_BLOCKS - 2]
    if with_button:
        value = RehearsalValue(rehearsal.name, rehearsal.plan.name, rehearsal.start, rehearsal.end)
        blocks.append(
            {
                "type": "actions",
                "elements": [button("Post in thread", POST_IN_THREAD, value.encode())],
            }
        )
    else:
        blocks.append(context("A rehearsal over recorded metrics: nothing was changed."))
    return {"text": text[:3000], "blocks": blocks}


def chart_data(
    rehearsal: Rehearsal,
    points: Mapping[str, Sequence[tuple[datetime, float]]],
    fail_above: Mapping[str, bool],
    zone: tzinfo,
) -> ChartData:
    """The daily summary's chart, over the rehearsal: traffic as it would have moved, and
    each gate's recorded values against its threshold band."""
    gates = [
        GateSeries(
            name,
            points.get(name, ()),
            thresholds=rehearsal.thresholds.get(name, ()),
            fail_above=fail_above.get(name, True),
        )
        for name in rehearsal.thresholds
    ]
    markers = [(s.at, s.verb) for s in rehearsal.steps if s.verb not in HOLDS]
    return ChartData(
        title=f"{rehearsal.name} · rehearsal · plan {rehearsal.plan.name}",
        start=rehearsal.start,
        end=rehearsal.end,
        percent=rehearsal.percent,
        gates=gates,
        markers=markers,
        missing="" if gates else "no gates configured",
        zone=zone,
    )


def _share(share: float) -> str:
    if share == 0:
        return "0 %"
    if share < 0.001:
        return "<0.1 %"
    return f"{share * 100:.1f} %"
