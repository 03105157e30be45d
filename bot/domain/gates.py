"""Gate measurements and what they mean for a rollout. Pure: values in, verdicts out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.durations import format_duration


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"  # the query returned nothing, or too few samples
    SOURCE_DOWN = "source_down"  # Prometheus unreachable, timed out, or refused the query


# A gate's defaults, where the config leaves them out (the field reports' numbers).
DEFAULT_INTERVAL = timedelta(seconds=30)  # how often it is measured
DEFAULT_GRACE = timedelta(minutes=10)  # how long unknown before on-call is paged
STALE_AFTER = 3  # intervals without a measurement after which a gate's outcome is stale


@dataclass(frozen=True)
class GateView:
    """What is known of one gate at decision time.

    `since` is when the gate entered its current outcome without interruption, so
    `now - since` is how long it has been red (or unknown, or green).
    """

    name: str
    outcome: Outcome
    since: datetime
    value: float | None = None
    threshold: float | None = None
    window: timedelta = timedelta(0)  # the sustain window (`for:`) at the current tier
    query: str = ""
    detail: str = ""
    measured_at: datetime | None = None  # when it was last measured
    grace: timedelta = DEFAULT_GRACE  # how long it may stay unknown before a page
    escalated: bool = False  # on-call was paged for the current unknown episode
    interval: timedelta = DEFAULT_INTERVAL  # how often it is measured

    @property
    def side(self) -> str:
        """Which side of its threshold a red value is: "below" for a `fail_below` breach
        (its assessment's detail says so), else "above"."""
        return "below" if self.detail.startswith("below") else "above"

    def sustained(self, now: datetime) -> bool:
        return now - self.since >= self.window

    def fresh(self, now: datetime) -> bool:
        """Measured recently enough to stand for now: within STALE_AFTER intervals."""
        if self.measured_at is None:
            return False
        return now - self.measured_at <= STALE_AFTER * self.interval


Observations = Mapping[str, GateView]

UNKNOWN = (Outcome.NO_DATA, Outcome.SOURCE_DOWN)


@dataclass(frozen=True)
class GateHold:
    """A gate that holds a rollout: unknown (no data, or the source down) since `since`.

    While a gate stays unknown its `since` does not move (`assess.next_view` carries it), so
    the gate and its outcome say whether a hold changed.
    """

    gate: str
    outcome: Outcome  # NO_DATA or SOURCE_DOWN
    since: datetime

    @property
    def words(self) -> str:
        return "Prometheus unreachable" if self.outcome is Outcome.SOURCE_DOWN else "no data"

    def line(self, since_words: str) -> str:
        """"error_rate — Prometheus unreachable since 14:02", the time as the surface shows
        times."""
        return f"{self.gate} — {self.words} since {since_words}"


def gate_holds(gate_names: tuple[str, ...], observations: Observations) -> tuple[GateHold, ...]:
    """The configured gates that are unknown now, in config order."""
    return tuple(
        GateHold(v.name, v.outcome, v.since)
        for name in gate_names
        if (v := observations.get(name)) is not None and v.outcome in UNKNOWN
    )


def held_words(holds: Sequence[GateHold], since_words: Callable[[datetime], str]) -> str:
    """Every hold on one line, joined with "; "."""
    return "; ".join(h.line(since_words(h.since)) for h in holds)


def blocking_gates(
    gate_names: tuple[str, ...], observations: Observations, now: datetime
) -> list[str]:
    """Gates that forbid an advance: red, unknown, never measured, or green only in a
    measurement too old to stand for now (the bot was down). One line each."""
    lines = []
    for name in gate_names:
        view = observations.get(name)
        if view is None:
            lines.append(f"{name}: not measured yet")
        elif view.outcome is not Outcome.PASS:
            lines.append(f"{name}: {describe(view)}")
        elif not view.fresh(now):
            lines.append(f"{name}: {stale_words(view, now)}")
    return lines


def stale_words(view: GateView, now: datetime) -> str:
    if view.measured_at is None:
        return "not measured yet"
    seconds = int((now - view.measured_at).total_seconds())
    ago = timedelta(seconds=seconds if seconds < 3600 else seconds // 60 * 60)
    return f"last measured {format_duration(ago)} ago; waits for a fresh measurement"


def describe(view: GateView) -> str:
    if view.outcome is Outcome.FAIL:
        if view.value is None:
            return "failing — " + (view.detail or "no value")
        side = view.side
        return f"failing — {fmt_value(view.value)} {side} {fmt_value(view.threshold)}"
    if view.outcome is Outcome.NO_DATA:
        return "no data" + (f" ({view.detail})" if view.detail else "")
    if view.outcome is Outcome.SOURCE_DOWN:
        return "metrics source down" + (f" ({view.detail})" if view.detail else "")
    return f"passing — {fmt_value(view.value)} within {fmt_value(view.threshold)}"


def fmt_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) < 0.1:
        return f"{value:.4g}"
    return f"{value:.3g}"
