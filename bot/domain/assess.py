"""Assessing one gate: a measured value against its tiered thresholds, and how long it has
been in its current outcome. Pure: no clock, no I/O; `now` is passed in.

A measurement comes from a metrics source (Prometheus, or a simulation) and is one of:
values (possibly empty: NO_DATA), or an error (SOURCE_DOWN). `assess` turns it into an
outcome at the rollout's tier; `next_view` folds the outcome into what was known before,
keeping `since` while the outcome holds, so "red for the whole window" is `now - since`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise

from bot.domain.gates import (
    DEFAULT_GRACE,
    DEFAULT_INTERVAL,
    STALE_AFTER,
    GateView,
    Outcome,
    fmt_value,
)
from bot.domain.plans import Tier


class OnNoData(StrEnum):
    HOLD = "hold"  # unknown: no advance, page on-call after the grace period
    FAIL = "fail"  # counts as red: sustained, it rolls the rollout back
    PASS = "pass"  # an empty result is green (low-traffic services); never a down source


# How long a gate must stay red before it rolls the rollout back, where the config does
# not say: the field reports' sustain windows.
DEFAULT_WINDOWS: dict[Tier, timedelta] = {
    Tier.CANARY: timedelta(minutes=5),
    Tier.PROGRESSIVE: timedelta(minutes=5),
    Tier.FINAL: timedelta(minutes=10),
}


@dataclass(frozen=True)
class GateRule:
    """A gate as configured: a query and thresholds and windows per tier."""

    name: str
    query: str  # `{flag}` is replaced by the rollout's flag
    fail_above: Mapping[Tier, float] | None = None
    fail_below: Mapping[Tier, float] | None = None
    window: Mapping[Tier, timedelta] = field(default_factory=dict)
    interval: timedelta = DEFAULT_INTERVAL
    on_no_data: OnNoData = OnNoData.HOLD
    no_data_grace: timedelta = DEFAULT_GRACE

    def query_for(self, flag: str) -> str:
        return self.query.replace("{flag}", flag)

    def window_at(self, tier: Tier) -> timedelta:
        return self.window.get(tier, DEFAULT_WINDOWS[tier])

    def threshold_at(self, tier: Tier) -> float | None:
        """The threshold shown for this tier: the upper one, else the lower one."""
        table = self.fail_above if self.fail_above is not None else self.fail_below
        return None if table is None else table.get(tier)

    def thresholds_at(self, tier: Tier) -> set[float | None]:
        """Every threshold an assessment at this tier may record (upper or lower)."""
        tables = [t for t in (self.fail_above, self.fail_below) if t is not None]
        return {t.get(tier) for t in tables} or {None}


@dataclass(frozen=True)
class Measurement:
    """What a metrics source answered. `error` set means the source could not answer."""

    values: tuple[float, ...] = ()
    error: str = ""

    @classmethod
    def down(cls, error: str) -> Measurement:
        return cls((), error or "unknown error")


@dataclass(frozen=True)
class Assessment:
    outcome: Outcome
    value: float | None
    threshold: float | None
    detail: str = ""


def assess(rule: GateRule, tier: Tier, measurement: Measurement) -> Assessment:
    """The outcome of one measurement at `tier`.

    Several series: the worst one counts (the highest against `fail_above`, the lowest
    against `fail_below`). NaN (e.g. 0/0 with no traffic) counts as no data.
    """
    above = rule.fail_above.get(tier) if rule.fail_above else None
    below = rule.fail_below.get(tier) if rule.fail_below else None
    threshold = rule.threshold_at(tier)
    if measurement.error:
        return _unknown(rule, Outcome.SOURCE_DOWN, threshold, measurement.error)
    values = [v for v in measurement.values if not math.isnan(v)]
    if not values:
        detail = "the query returned no samples" if not measurement.values else "no traffic"
        return _unknown(rule, Outcome.NO_DATA, threshold, detail)
    if above is not None and max(values) > above:
        return Assessment(Outcome.FAIL, max(values), above, f"above {fmt_value(above)}")
    if below is not None and min(values) < below:
        return Assessment(Outcome.FAIL, min(values), below, f"below {fmt_value(below)}")
    worst = max(values) if above is not None else min(values)
    return Assessment(Outcome.PASS, worst, threshold)


def _unknown(rule: GateRule, outcome: Outcome, threshold: float | None, detail: str) -> Assessment:
    if rule.on_no_data is OnNoData.FAIL:
        return Assessment(Outcome.FAIL, None, threshold, f"{detail}; on_no_data: fail")
    if rule.on_no_data is OnNoData.PASS and outcome is Outcome.NO_DATA:
        return Assessment(Outcome.PASS, None, threshold, f"{detail}; on_no_data: pass")
    return Assessment(outcome, None, threshold, detail)


def history_holds(
    rule: GateRule,
    tier: Tier,
    outcome: Outcome,
    points: Sequence[tuple[datetime, float]],
    start: datetime,
    end: datetime,
) -> bool:
    """Whether a gate's recorded history (a range query's points) shows `outcome` through
    the whole of [start, end]: no hole longer than STALE_AFTER intervals, and every point
    judged `outcome` at `tier`. Used to fill the time the bot did not watch."""
    limit = STALE_AFTER * rule.interval
    times = [start, *(t for t, _ in points), end]
    if not points or any(b - a > limit for a, b in pairwise(times)):
        return False
    return all(assess(rule, tier, Measurement((v,))).outcome is outcome for _, v in points)


def next_view(
    previous: GateView | None,
    rule: GateRule,
    tier: Tier,
    assessment: Assessment,
    query: str,
    now: datetime,
    gap_held: bool | None = None,
) -> GateView:
    """Fold a new assessment into what was known.

    `since` carries over while the outcome stays the same. Across time the bot did not
    watch (more than STALE_AFTER intervals since the last measurement: it was down), the
    metrics' own history decides when there is one (`gap_held`, from `history_holds`:
    True when it shows the outcome held throughout, False when it shows otherwise, None
    when there is no history):
    - a PASS carries on only when the history shows it green throughout: unwatched time
      never counts as green on the bot's word alone;
    - a FAIL carries on when the history shows it red throughout; without history, for a
      gap up to its sustain window, so a restart in the middle of a breach does not reset
      its clock, while one red measurement before a long outage and one after it are no
      sustained breach;
    - an unknown outcome (no data, source down) carries on: its grace keeps running.
    """
    since = now
    escalated = False
    if previous is not None and previous.outcome is assessment.outcome:
        gap = now - previous.measured_at if previous.measured_at else timedelta(0)
        if gap <= STALE_AFTER * rule.interval or assessment.outcome not in _GAP_SENSITIVE:
            carries = True
        elif gap_held is not None:
            carries = gap_held
        else:
            carries = assessment.outcome is Outcome.FAIL and gap <= rule.window_at(tier)
        if carries:
            since = previous.since
            escalated = previous.escalated
    return GateView(
        name=rule.name,
        outcome=assessment.outcome,
        since=since,
        value=assessment.value,
        threshold=assessment.threshold,
        window=rule.window_at(tier),
        query=query,
        detail=assessment.detail,
        measured_at=now,
        grace=rule.no_data_grace,
        escalated=escalated,
        interval=rule.interval,
    )


_GAP_SENSITIVE = (Outcome.PASS, Outcome.FAIL)


def due_gates(
    rules: Sequence[GateRule], views: Mapping[str, GateView], tier: Tier, now: datetime
) -> list[GateRule]:
    """Gates whose interval has passed since they were last measured (or never were), and
    gates last judged against another tier's threshold (the rollout just moved)."""
    due = []
    for rule in rules:
        view = views.get(rule.name)
        if (
            view is None
            or view.measured_at is None
            or now >= view.measured_at + rule.interval
            or view.threshold not in rule.thresholds_at(tier)
        ):
            due.append(rule)
    return due


def next_measurement_at(
    rules: Sequence[GateRule], views: Mapping[str, GateView], now: datetime
) -> datetime:
    """When the next of these gates is due to be measured."""
    times = []
    for rule in rules:
        view = views.get(rule.name)
        last = view.measured_at if view is not None and view.measured_at else now
        times.append(max(now, last + rule.interval))
    return min(times) if times else now


def overdue_unknown(views: Mapping[str, GateView], now: datetime) -> list[GateView]:
    """Unknown gates (no data, source down) past their grace, not yet escalated."""
    return [
        v
        for v in views.values()
        if v.outcome in (Outcome.NO_DATA, Outcome.SOURCE_DOWN)
        and not v.escalated
        and now - v.since >= v.grace
    ]


def observe(
    previous: GateView | None,
    rule: GateRule,
    tier: Tier,
    measurement: Measurement,
    flag: str,
    now: datetime,
    gap_held: bool | None = None,
) -> GateView:
    """One measurement of a gate, judged at `tier` and folded into what was known: what
    the live tick and a rehearsal both do with every value they read."""
    assessment = assess(rule, tier, measurement)
    return next_view(previous, rule, tier, assessment, rule.query_for(flag), now, gap_held)


def breach_due(view: GateView | None, now: datetime) -> bool:
    """A red gate whose window has completed: measure it again now, so a sustained breach
    is judged on a fresh value."""
    return view is not None and view.outcome is Outcome.FAIL and view.since + view.window <= now


def to_measure(
    rules: Sequence[GateRule], views: Mapping[str, GateView], tier: Tier, now: datetime
) -> list[GateRule]:
    """The gates a tick measures: those due, and red ones whose window just completed."""
    due = due_gates(rules, views, tier, now)
    return due + [r for r in rules if r not in due and breach_due(views.get(r.name), now)]


def next_tick(
    rules: Sequence[GateRule], views: Mapping[str, GateView], now: datetime
) -> datetime:
    """The next measurement, or sooner: the moment a red gate's window completes, so a
    sustained breach rolls back on the dot rather than up to an interval later."""
    due = next_measurement_at(rules, views, now)
    for view in views.values():
        if view.outcome is Outcome.FAIL:
            due = min(due, max(now, view.since + view.window))
    return due
