"""A rollout's state machine: `decide(spec, status, observations, command, now)`.

Pure: it reads no clock and does no I/O. The service persists what it returns (the new
status and its effects) in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.durations import format_duration
from bot.domain.gates import (
    UNKNOWN,
    GateHold,
    GateView,
    Observations,
    Outcome,
    blocking_gates,
    fmt_value,
    gate_holds,
    stale_words,
)
from bot.domain.plans import Plan, Stage


class State(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"


ACTIVE_STATES = frozenset({State.PROGRESSING, State.PAUSED})


class AdvanceMode(StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


@dataclass(frozen=True)
class RolloutSpec:
    name: str
    flag: str
    plan: Plan
    gates: tuple[str, ...] = ()
    advance: AdvanceMode = AdvanceMode.MANUAL


@dataclass(frozen=True)
class RolloutStatus:
    state: State = State.PENDING
    percent: int = 0
    stage_index: int | None = None
    stage_started_at: datetime | None = None
    hold_reason: str = ""
    version: int = 0
    held_by: tuple[GateHold, ...] = ()  # gates unknown now: no advance until measured again

    def stage(self, plan: Plan) -> Stage | None:
        if self.stage_index is None:
            return None
        return plan.stages[self.stage_index]


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    verb = "start"


@dataclass(frozen=True)
class Advance:
    """Advance to `target` percent, or to the next stage when target is None."""

    target: int | None = None
    force: bool = False
    reason: str = ""
    verb = "advance"


@dataclass(frozen=True)
class Pause:
    reason: str = ""
    verb = "pause"


@dataclass(frozen=True)
class Resume:
    verb = "resume"


@dataclass(frozen=True)
class Rollback:
    to: int = 0
    reason: str = ""
    verb = "rollback"


@dataclass(frozen=True)
class Evaluate:
    """The bot's own look at a rollout after measuring its gates or at a soak's end:
    roll back on a gate red for its whole window, page on-call for a gate unknown past
    its grace, say when gates start or stop holding it (unknown: no advance), advance (or
    complete) after a green soak. Observations carry `since`."""

    verb = "evaluate"


Command = Start | Advance | Pause | Resume | Rollback | Evaluate


# --- what decide returns --------------------------------------------------------------


@dataclass(frozen=True)
class SetPercent:
    """Tell the service its new percentage and the feature flags on at it."""

    flag: str
    percent: int
    flags_on: tuple[str, ...]


@dataclass(frozen=True)
class Announce:
    """Say in the rollout's thread what changed, and refresh its parent message."""

    broadcast: bool = False  # also show the reply in the channel
    new_thread: bool = False  # a new run: open a fresh thread


@dataclass(frozen=True)
class OpenIncident:
    """Page the on-call chain: something went wrong that a person must look at."""

    kind: str  # automatic_rollback, no_data, source_down, webhook_failing, …
    summary: str
    detail: str = ""


Effect = SetPercent | Announce | OpenIncident


@dataclass(frozen=True)
class Change:
    verb: str
    from_state: State
    to_state: State
    from_percent: int
    to_percent: int
    reason: str = ""
    forced: bool = False


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    change: Change
    effects: tuple[Effect, ...] = field(default_factory=tuple)
    gates: tuple[GateView, ...] = ()  # the evidence for an automatic decision


@dataclass(frozen=True)
class Refusal:
    """A command that cannot apply: what was wrong, and what to type instead."""

    problem: str
    hint: str = ""


# --- decide ---------------------------------------------------------------------------


def decide(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    command: Command,
    now: datetime,
) -> Decision | Refusal:
    match command:
        case Start():
            return _start(spec, status, now)
        case Advance():
            return _advance(spec, status, observations, command, now)
        case Pause():
            return _pause(spec, status, command)
        case Resume():
            return _resume(spec, status, now)
        case Rollback():
            return _rollback(spec, status, command, now)
        case Evaluate():
            return _evaluate(spec, status, observations, now)


def _start(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> Decision | Refusal:
    if status.state in ACTIVE_STATES:
        return Refusal(
            f"{spec.name} is already running ({status.state.value} at {status.percent} %).",
            f"To move it, type `/rollout advance next {spec.name}`; to stop it, "
            f"`/rollout rollback {spec.name}`.",
        )
    first = spec.plan.stages[0]
    new = RolloutStatus(
        state=State.PROGRESSING,
        percent=first.percent,
        stage_index=0,
        stage_started_at=now,
        version=status.version + 1,
    )
    return _decision(spec, status, new, "start", new_thread=True)


def _advance(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    command: Advance,
    now: datetime,
) -> Decision | Refusal:
    name = spec.name
    if status.state is State.PAUSED:
        return Refusal(
            f"{name} is paused at {status.percent} %"
            + (f" ({status.hold_reason})" if status.hold_reason else "")
            + ".",
            f"Resume it first with `/rollout resume {name}`.",
        )
    if status.state is not State.PROGRESSING:
        return Refusal(
            f"{name} is {state_words(status)}, so there is nothing to advance.",
            f"Start it with `/rollout start {name}`.",
        )
    target = command.target
    if target is not None and not status.percent < target <= 100:
        return Refusal(
            f"Percent must be above the current {status.percent} and at most 100"
            f" (you typed {target}).",
            f"Type `/rollout advance next {name}` for the plan's next stage"
            f" ({_next_percent_words(spec, status)}).",
        )
    index = spec.plan.next_index_above(status.percent)
    if not command.force:
        refusal = _not_yet(spec, status, observations, target, now)
        if refusal is not None:
            return refusal
    if target is None and index is None:
        done = _complete(spec, status, reason=command.reason)
        return replace(done, change=replace(done.change, forced=command.force))
    if target is None:
        assert index is not None
        target = spec.plan.stages[index].percent
    new = replace(
        status,
        percent=target,
        stage_index=spec.plan.index_at_or_below(target),
        stage_started_at=now,
        hold_reason="",
        version=status.version + 1,
    )
    return _decision(spec, status, new, "advance", reason=command.reason, forced=command.force)


def _not_yet(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    target: int | None,
    now: datetime,
) -> Refusal | None:
    """Why a person may not advance (or complete) now without `force`, or None.

    A stage at a time, each watched for its soak, with every gate green: the field reports
    want at least an hour of monitoring after an increment, and every built-in stage soaks
    an hour or more, so waiting out the stage's soak covers it (a custom stage's soak,
    however short, is all this waits for)."""
    name, plan = spec.name, spec.plan
    said = []
    stage = status.stage(plan)
    soaking = False
    if stage is not None and status.stage_started_at is not None:
        soaked = now - status.stage_started_at
        left = stage.soak - soaked
        soaking = left > timedelta(0)
        if soaking:
            said.append(
                f"{name} has soaked {_span(soaked, up=False)} of its {_span(stage.soak)}"
                f" at {status.percent} %: {_span(left, up=True)} left."
            )
    index = plan.next_index_above(status.percent)
    step = plan.stages[index].percent if index is not None else None
    skips = target is not None and step is not None and target > step
    if skips:
        skipped = [p for p in plan.percents if status.percent < p < (target or 0)]
        said.append(f"The plan's next stage is {step} %: {target} % would skip {_and(skipped)} %.")
    blockers = blocking_gates(spec.gates, observations, now) if index is not None else []
    problem = " ".join(said)
    if blockers:
        gates = f"{name} cannot advance while a gate is not green:\n• " + "\n• ".join(blockers)
        problem = f"{problem}\n{gates}" if problem else gates
    if not problem:
        return None
    typed = "next" if target is None else str(target)
    force = f"`/rollout advance {typed} {name} force <reason>`"
    if skips:
        waits = ["it has soaked"] if soaking else []
        waits += ["the gates are green"] if blockers else []
        once = f" once {' and '.join(waits)}" if waits else ""
        plain = f"`/rollout advance next {name}` for {step} %{once}"
        return Refusal(problem, f"Type {plain}, or {force}.")
    if soaking and blockers:
        return Refusal(problem, f"Wait for the soak and the gates, or type {force}.")
    if soaking:
        return Refusal(problem, f"Wait, or type {force}.")
    return Refusal(
        problem,
        f"Wait for the gates, or, as a lead, override with "
        f"`/rollout advance {target or step} {name} force <reason>`.",
    )


def _span(delta: timedelta, *, up: bool = True) -> str:
    """A duration as people read it: `21h 50m`, `1d`, `45s`; to the minute from a minute
    on, rounded up (time left) or down (time spent)."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 60:
        whole, part = divmod(seconds, 60)
        seconds = 60 * (whole + (1 if up and part else 0))
    return re.sub(r"(?<=[a-z])(?=\d)", " ", format_duration(timedelta(seconds=seconds)))


def _and(items: list[int]) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _complete(spec: RolloutSpec, status: RolloutStatus, reason: str = "") -> Decision:
    new = replace(status, state=State.COMPLETED, version=status.version + 1)
    return _decision(spec, status, new, "complete", reason=reason)


def _pause(spec: RolloutSpec, status: RolloutStatus, command: Pause) -> Decision | Refusal:
    if status.state is State.PAUSED:
        return Refusal(
            f"{spec.name} is already paused at {status.percent} %.",
            f"Type `/rollout resume {spec.name}` to continue it.",
        )
    if status.state is not State.PROGRESSING:
        return Refusal(
            f"{spec.name} is {state_words(status)}; only a running rollout can be paused.",
            f"Type `/rollout status {spec.name}` to see where it stands.",
        )
    new = replace(
        status, state=State.PAUSED, hold_reason=command.reason, version=status.version + 1
    )
    return _decision(spec, status, new, "pause", reason=command.reason)


def _resume(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> Decision | Refusal:
    if status.state is State.ROLLED_BACK:
        return Refusal(
            f"{spec.name} was rolled back to 0 %; it resumes only by starting again.",
            f"Type `/rollout start {spec.name}` to begin again at {spec.plan.stages[0].percent} %.",
        )
    if status.state is not State.PAUSED:
        return Refusal(
            f"{spec.name} is {state_words(status)}, not paused.",
            f"Type `/rollout status {spec.name}` to see where it stands.",
        )
    # The soak of the stage starts again: time spent held does not count as healthy time.
    new = replace(
        status,
        state=State.PROGRESSING,
        hold_reason="",
        stage_started_at=now,
        version=status.version + 1,
    )
    return _decision(spec, status, new, "resume")


def _rollback(
    spec: RolloutSpec, status: RolloutStatus, command: Rollback, now: datetime
) -> Decision | Refusal:
    name = spec.name
    if status.state in (State.PENDING, State.ROLLED_BACK) or status.percent == 0:
        return Refusal(
            f"{name} is {state_words(status)}; there is nothing to roll back.",
            f"Type `/rollout status {name}` to see where it stands.",
        )
    if not 0 <= command.to < status.percent:
        return Refusal(
            f"A rollback must go below the current {status.percent} % (you typed {command.to}).",
            f"Type `/rollout rollback {name}` for 0 %, or"
            f" `/rollout rollback {name} to PERCENT` with PERCENT under {status.percent}.",
        )
    reason = command.reason
    if command.to == 0:
        new = RolloutStatus(
            state=State.ROLLED_BACK, percent=0, hold_reason=reason, version=status.version + 1
        )
    else:
        held = f"rolled back from {status.percent} %" + (f": {reason}" if reason else "")
        new = RolloutStatus(
            state=State.PAUSED,
            percent=command.to,
            stage_index=spec.plan.index_at_or_below(command.to),
            stage_started_at=now,
            hold_reason=held,
            version=status.version + 1,
            held_by=status.held_by,  # still exposed, so still watched: the gates still hold
        )
    return _decision(spec, status, new, "rollback", reason=reason, broadcast=True)


NOTHING_TO_DO = "nothing to do"
# A gate turned unknown (no data, source down), another one did while held, or every gate
# is measured again: said once in the thread, not on every tick.
HOLD_START, HOLD_CHANGE, HOLD_END = "hold_start", "hold_change", "hold_end"


def _evaluate(
    spec: RolloutSpec, status: RolloutStatus, observations: Observations, now: datetime
) -> Decision | Refusal:
    if status.state not in ACTIVE_STATES or status.percent == 0:
        return Refusal(NOTHING_TO_DO, f"{spec.name} is {state_words(status)}")
    views = [v for g in spec.gates if (v := observations.get(g)) is not None]
    failing = [v for v in views if v.outcome is Outcome.FAIL and v.sustained(now)]
    if failing:
        return _automatic_rollback(spec, status, failing)
    holds = gate_holds(spec.gates, observations)
    overdue = [
        v for v in views if v.outcome in UNKNOWN and not v.escalated and now - v.since >= v.grace
    ]
    if overdue:
        return _hold_and_page(spec, status, overdue, holds, now)
    if _hold_key(holds) != _hold_key(status.held_by):
        return _hold_changed(spec, status, holds, observations)
    if status.state is not State.PROGRESSING:
        return Refusal(NOTHING_TO_DO, f"{spec.name} is paused")
    stage = status.stage(spec.plan)
    if stage is None or status.stage_started_at is None:
        return Refusal(NOTHING_TO_DO, f"{spec.name} is between stages")
    waiting = _green_soak_left(spec, status.stage_started_at, stage.soak, observations, now)
    if waiting:
        return Refusal(NOTHING_TO_DO, waiting)
    index = spec.plan.next_index_above(status.percent)
    if index is None:
        watch = format_duration(stage.soak)
        return _complete(spec, status, reason=f"the {watch} watch ended green")
    if spec.advance is not AdvanceMode.AUTO:
        return Refusal(NOTHING_TO_DO, "the soak ended green; advance is manual")
    target = spec.plan.stages[index]
    new = replace(
        status,
        percent=target.percent,
        stage_index=index,
        stage_started_at=now,
        hold_reason="",
        version=status.version + 1,
    )
    reason = f"the {format_duration(stage.soak)} soak ended with every gate green"
    return _decision(spec, status, new, "advance", reason=reason)


def _green_soak_left(
    spec: RolloutSpec,
    stage_started_at: datetime,
    soak: timedelta,
    observations: Observations,
    now: datetime,
) -> str:
    """Why the stage has not yet soaked green; empty when it has.

    A stage has soaked when every gate has been PASS, without interruption, for the
    whole soak within this stage. A gate that turned red or unknown during the soak
    starts the soak again when it turns green: only watched, green time counts.
    """
    green_from = stage_started_at
    for name in spec.gates:
        view = observations.get(name)
        if view is None:
            return f"gate {name} is not measured yet"
        if view.outcome is not Outcome.PASS:
            return f"gate {name} is {view.outcome.value}"
        if not view.fresh(now):
            return f"gate {name} was {stale_words(view, now)}"
        green_from = max(green_from, view.since)
    left = green_from + soak - now
    if left > timedelta(0):
        return f"{format_duration(left)} of green soak left"
    return ""


def _automatic_rollback(
    spec: RolloutSpec, status: RolloutStatus, failing: list[GateView]
) -> Decision:
    reason = "; ".join(gate_reason(v) for v in failing)
    new = RolloutStatus(
        state=State.ROLLED_BACK, percent=0, hold_reason=reason, version=status.version + 1
    )
    decision = _decision(spec, status, new, "rollback", reason=reason, broadcast=True)
    incident = OpenIncident(
        "automatic_rollback",
        f"{spec.name} rolled back automatically from {status.percent} % to 0 %",
        "\n".join(f"{gate_reason(v)}\nquery: {v.query}" for v in failing),
    )
    return replace(decision, effects=(*decision.effects, incident), gates=tuple(failing))


def _hold_key(holds: tuple[GateHold, ...]) -> tuple[tuple[str, Outcome], ...]:
    return tuple((h.gate, h.outcome) for h in holds)


def _holding(status: RolloutStatus, holds: tuple[GateHold, ...]) -> RolloutStatus:
    """The status held by `holds`: unchanged (same version) when they are the held ones."""
    if _hold_key(holds) == _hold_key(status.held_by):
        return status
    return replace(status, held_by=holds, version=status.version + 1)


def _hold_changed(
    spec: RolloutSpec,
    status: RolloutStatus,
    holds: tuple[GateHold, ...],
    observations: Observations,
) -> Decision:
    """The gates that hold the rollout changed: a hold starts, changes or ends. Nothing
    moves; the thread and the parent message say so, once."""
    if holds:
        verb = HOLD_CHANGE if status.held_by else HOLD_START
        reason = "; ".join(f"{h.gate}: {h.words}" for h in holds)
        evidence = [observations[h.gate] for h in holds]
    else:
        verb = HOLD_END
        back = [h.gate for h in status.held_by]
        reason = f"{', '.join(back)} {'is' if len(back) == 1 else 'are'} measured again"
        evidence = [v for g in back if (v := observations.get(g)) is not None]
    change = Change(verb, status.state, status.state, status.percent, status.percent, reason)
    return Decision(_holding(status, holds), change, (Announce(),), tuple(evidence))


def _hold_and_page(
    spec: RolloutSpec,
    status: RolloutStatus,
    overdue: list[GateView],
    holds: tuple[GateHold, ...],
    now: datetime,
) -> Decision:
    """A gate unknown past its grace: the rollout stays where it is, on-call is paged."""
    lines = [
        f"gate {v.name}: {_unknown_words(v)} for {format_duration(now - v.since)}" for v in overdue
    ]
    reason = "; ".join(lines)
    change = Change("hold", status.state, status.state, status.percent, status.percent, reason)
    effects: list[Effect] = [Announce()]
    for v in overdue:
        kind = "source_down" if v.outcome is Outcome.SOURCE_DOWN else "no_data"
        effects.append(
            OpenIncident(
                kind,
                f"{spec.name} is held at {status.percent} %: gate {v.name} "
                f"{_unknown_words(v)} for {format_duration(now - v.since)}",
                f"{v.detail}\nquery: {v.query}",
            )
        )
    return Decision(_holding(status, holds), change, tuple(effects), tuple(overdue))


def gate_reason(view: GateView) -> str:
    """One line naming a red gate, its value, threshold and window."""
    if view.value is None:
        what = view.detail or "no value"
    else:
        side = "below" if view.detail.startswith("below") else "above"
        what = f"{fmt_value(view.value)} {side} the threshold {fmt_value(view.threshold)}"
    return f"gate {view.name}: {what} for {format_duration(view.window)}"


def _unknown_words(view: GateView) -> str:
    return "no data" if view.outcome is Outcome.NO_DATA else "metrics source down"


def _decision(
    spec: RolloutSpec,
    old: RolloutStatus,
    new: RolloutStatus,
    verb: str,
    *,
    reason: str = "",
    forced: bool = False,
    broadcast: bool = False,
    new_thread: bool = False,
) -> Decision:
    if new.state not in ACTIVE_STATES or new.percent == 0:
        new = replace(new, held_by=())  # no traffic exposed: no gate holds it any more
    change = Change(verb, old.state, new.state, old.percent, new.percent, reason, forced)
    effects: list[Effect] = [Announce(broadcast=broadcast, new_thread=new_thread)]
    if new.percent != old.percent:
        effects.insert(0, SetPercent(spec.flag, new.percent, spec.plan.flags_on_at(new.percent)))
    return Decision(new, change, tuple(effects))


def state_words(status: RolloutStatus) -> str:
    """A few words a person reads next to the rollout's name."""
    return {
        State.PENDING: "not started",
        State.PROGRESSING: f"progressing at {status.percent} %",
        State.PAUSED: f"paused at {status.percent} %",
        State.ROLLED_BACK: "rolled back to 0 %",
        State.COMPLETED: "completed at 100 %" if status.percent == 100 else "completed",
    }[status.state]


def _next_percent_words(spec: RolloutSpec, status: RolloutStatus) -> str:
    index = spec.plan.next_index_above(status.percent)
    if index is None:
        return "it completes the rollout"
    return f"{spec.plan.stages[index].percent} %"
