"""A rehearsal: a plan and its gates replayed over recorded history, with simulated time.

Pure. The recorded values stand in for the live measurements, and everything else is the
live bot's own code: `assess.to_measure` picks the gates a tick measures, `assess.observe`
judges a value and folds it into the gate's view, `rollout.decide(Evaluate())` rolls back,
holds, pages, waits on a freeze window or advances, and `assess.next_tick` says when the
next tick falls. Only who acts differs: nobody types anything, so the rollout starts at the
period's start (or when a freeze window first lets it), advances as soon as each soak ends
green (as `advance: auto` would), and a step the two-person rule would ask a second person
for is taken as confirmed at once. A rollback ends the rehearsal: the live bot holds a
rolled-back rollout until someone starts it again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain.assess import GateRule, Measurement, next_tick, observe, to_measure
from bot.domain.gates import GateView
from bot.domain.plans import Plan, tier_for
from bot.domain.rollout import (
    ACTIVE_STATES,
    AdvanceMode,
    Context,
    Decision,
    Evaluate,
    RolloutSpec,
    RolloutStatus,
    Start,
    State,
    decide,
)

# Decisions that do not move the rollout but say why it stands still.
HOLDS = frozenset({"hold", "hold_start", "hold_change", "hold_end", "wait"})


@dataclass(frozen=True)
class History:
    """A gate's recorded values: at each sample time, the value of every series the query
    returned (several series: the worst counts, as live), and the stretches in which the
    source could not answer (`errors`: start, end, why)."""

    rule: GateRule
    times: tuple[datetime, ...] = ()
    values: tuple[tuple[float, ...], ...] = ()
    errors: tuple[tuple[datetime, datetime, str], ...] = ()

    def measurement(self, at: datetime) -> Measurement:
        """What an instant query at `at` would have answered: the latest sample of the
        gate's interval ending at `at`; none there is no data; an error is a down source."""
        for start, end, error in self.errors:
            if start <= at < end:
                return Measurement.down(error)
        index = bisect_right(self.times, at) - 1
        if index >= 0 and at - self.times[index] < self.rule.interval:
            return Measurement(self.values[index])
        return Measurement(())


@dataclass(frozen=True)
class Step:
    """One decision the rehearsal made: when, what, from which percent to which, why, and
    the gates as they stood (their values, thresholds and windows)."""

    at: datetime
    verb: str
    from_percent: int
    to_percent: int
    reason: str
    gates: tuple[GateView, ...]


@dataclass(frozen=True)
class Rehearsal:
    name: str
    plan: Plan
    start: datetime
    end: datetime
    steps: tuple[Step, ...]
    final: RolloutStatus
    full_at: datetime | None  # when it reached 100 %
    outcome: str  # a sentence: completed, rolled back, or where it stood at the end
    percent: tuple[tuple[datetime, int], ...]  # each change, for the chart
    thresholds: Mapping[str, tuple[tuple[datetime, float | None], ...]]  # per gate
    two_person: bool = False  # the two-person rule was taken as met

    @property
    def rolled_back(self) -> Step | None:
        return next((s for s in self.steps if s.verb == "rollback"), None)

    def changes(self) -> list[Step]:
        """The steps that moved the rollout (start, advance, rollback, complete)."""
        return [s for s in self.steps if s.verb not in HOLDS]


def rehearse(
    spec: RolloutSpec,
    histories: Sequence[History],
    start: datetime,
    end: datetime,
    plan: Plan | None = None,
) -> Rehearsal:
    """What the live bot would have done with `spec` between `start` and `end`, had its
    gates measured what `histories` recorded."""
    two_person = spec.policy.two_person is not None
    spec = replace(
        spec,
        plan=plan or spec.plan,
        advance=AdvanceMode.AUTO,
        policy=replace(spec.policy, two_person=None),
    )
    by_gate = {h.rule.name: h for h in histories if h.rule.name in spec.gates}
    rules = [by_gate[g].rule for g in spec.gates if g in by_gate]
    steps: list[Step] = []
    views: dict[str, GateView] = {}
    first = _first_start(spec, start, end)
    percent: list[tuple[datetime, int]] = [(start, 0)]
    thresholds: dict[str, list[tuple[datetime, float | None]]] = {r.name: [] for r in rules}
    if first is None:
        return _result(spec, start, end, steps, RolloutStatus(), percent, thresholds, two_person)
    at, decision = first
    status = decision.status
    steps.append(_step(at, decision, views))
    _moved(at, status.percent, percent, thresholds, rules)
    again = True  # the live bot measures at once after a change of percent
    while status.state in ACTIVE_STATES and at <= end:
        tier = tier_for(max(status.percent, 1))
        for rule in to_measure(rules, views, tier, at):
            measured = by_gate[rule.name].measurement(at)
            views[rule.name] = observe(views.get(rule.name), rule, tier, measured, spec.flag, at)
        result = decide(spec, status, views, Evaluate(), at, Context())
        moved = False
        if isinstance(result, Decision):
            steps.append(_step(at, result, views))
            if result.change.verb == "hold":  # on-call was paged: once per episode, as live
                for view in result.gates:
                    views[view.name] = replace(views[view.name], escalated=True)
            moved = result.status.percent != status.percent
            status = result.status
            if moved:
                _moved(at, status.percent, percent, thresholds, rules)
        if moved and not again:
            again = True
            continue
        again = False
        at = _next_moment(spec, status, rules, views, at)
    return _result(spec, start, end, steps, status, percent, thresholds, two_person)


def _first_start(
    spec: RolloutSpec, start: datetime, end: datetime
) -> tuple[datetime, Decision] | None:
    """The rollout starts at `start`, or when the freeze window it falls in ends."""
    at = start
    while at <= end:
        result = decide(spec, RolloutStatus(), {}, Start(), at, Context())
        if isinstance(result, Decision):
            return at, result
        frozen = spec.policy.frozen(at)
        if frozen is None or frozen.until is None:
            return None
        at = max(frozen.until, at + timedelta(seconds=1))
    return None


def _next_moment(
    spec: RolloutSpec,
    status: RolloutStatus,
    rules: Sequence[GateRule],
    views: Mapping[str, GateView],
    at: datetime,
) -> datetime:
    """The next moment the live bot would look: its next gate tick, or the end of the
    stage's soak (or of the freeze window it waits on), whichever comes first."""
    moments = [next_tick(rules, views, at)] if rules else []
    stage = status.stage(spec.plan)
    if status.state is State.PROGRESSING and stage and status.stage_started_at:
        due = status.stage_started_at + stage.soak
        if status.waiting is not None and status.waiting.until is not None:
            due = max(due, status.waiting.until)
        moments.append(due)
    later = [m for m in moments if m > at]
    if later:
        return min(later)
    step = min((r.interval for r in rules), default=timedelta(minutes=1))
    return at + step


def _step(at: datetime, decision: Decision, views: Mapping[str, GateView]) -> Step:
    change = decision.change
    evidence = decision.gates or tuple(views.values())
    return Step(at, change.verb, change.from_percent, change.to_percent, change.reason, evidence)


def _moved(
    at: datetime,
    to: int,
    percent: list[tuple[datetime, int]],
    thresholds: dict[str, list[tuple[datetime, float | None]]],
    rules: Sequence[GateRule],
) -> None:
    percent.append((at, to))
    tier = tier_for(max(to, 1))
    for rule in rules:
        thresholds[rule.name].append((at, rule.threshold_at(tier)))


def _result(
    spec: RolloutSpec,
    start: datetime,
    end: datetime,
    steps: list[Step],
    status: RolloutStatus,
    percent: list[tuple[datetime, int]],
    thresholds: dict[str, list[tuple[datetime, float | None]]],
    two_person: bool,
) -> Rehearsal:
    full_at = next((s.at for s in steps if s.to_percent == 100 and s.verb not in HOLDS), None)
    return Rehearsal(
        name=spec.name,
        plan=spec.plan,
        start=start,
        end=end,
        steps=tuple(steps),
        final=status,
        full_at=full_at,
        outcome=_outcome(spec, steps, status, full_at, end),
        percent=tuple(percent),
        thresholds={name: tuple(points) for name, points in thresholds.items()},
        two_person=two_person,
    )


def _outcome(
    spec: RolloutSpec,
    steps: list[Step],
    status: RolloutStatus,
    full_at: datetime | None,
    end: datetime,
) -> str:
    """Whether it would have reached 100 %, or why not, in a sentence."""
    if not steps:
        return "It would not have started: a freeze window covers the whole period."
    if status.state is State.ROLLED_BACK:
        back = next(s for s in steps if s.verb == "rollback")
        return (
            f"It would not have reached 100 %: rolled back from {back.from_percent} % "
            f"({back.reason})."
        )
    if status.state is State.COMPLETED:
        return "It would have reached 100 % and completed its watch there."
    if full_at is not None:
        return "It would have reached 100 %; its watch there was still running at the end."
    left = _soak_left(spec, status, end)
    held = f" ({status.hold_reason})" if status.hold_reason else ""
    waiting = f"; waiting: {status.waiting.reason}" if status.waiting else ""
    return (
        f"It would not have reached 100 % within the period: at {status.percent} % at the "
        f"end{held}{waiting}{left}."
    )


def _soak_left(spec: RolloutSpec, status: RolloutStatus, end: datetime) -> str:
    stage = status.stage(spec.plan)
    if stage is None or status.stage_started_at is None:
        return ""
    left = status.stage_started_at + stage.soak - end
    if left <= timedelta(0):
        return ""
    hours = left.total_seconds() / 3600
    return f", with at least {hours:.1f} h of its {stage.soak.total_seconds() / 3600:g} h soak left"
