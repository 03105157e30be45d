"""A rollout's state machine: `decide(spec, status, observations, command, now)`.

Pure: it reads no clock and does no I/O. The service persists what it returns (the new
status and its effects) in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
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
from bot.domain.policy import EmergencyFreeze, Frozen, Person, Policy, Role


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
    # Every run is a shadow run: it advances by itself against real metrics and says what
    # it decides, but what the service is told stays where it was (see RolloutStatus.shadow).
    SHADOW = "shadow"


@dataclass(frozen=True)
class RolloutSpec:
    name: str
    flag: str
    plan: Plan
    gates: tuple[str, ...] = ()
    advance: AdvanceMode = AdvanceMode.MANUAL
    policy: Policy = field(default_factory=Policy)
    page_in_shadow: bool = False  # a shadow run pages on-call too


@dataclass(frozen=True)
class PendingStep:
    """A step that waits for a second person (the two-person rule). `id` is the version
    of the rollout that recorded it: a confirm names it, so a stale confirm does nothing."""

    id: int
    command: Start | Advance | Resume
    asker: str
    asked_at: datetime
    expires_at: datetime
    to_percent: int


@dataclass(frozen=True)
class Waiting:
    """Why an automatic advance, due now, does not happen: a freeze, or a step that needs
    two people. `until` is when it goes on by itself (None: when someone acts)."""

    reason: str
    until: datetime | None = None
    frozen: bool = False  # a freeze window or the emergency freeze, not the two-person rule


@dataclass(frozen=True)
class RolloutStatus:
    state: State = State.PENDING
    percent: int = 0
    stage_index: int | None = None
    stage_started_at: datetime | None = None
    hold_reason: str = ""
    version: int = 0
    held_by: tuple[GateHold, ...] = ()  # gates unknown now: no advance until measured again
    pending: PendingStep | None = None
    waiting: Waiting | None = None
    # A shadow run: the percentage the service keeps being told (what it was told before
    # the run started) while `percent` moves as the rollout would. None: a live run.
    shadow: int | None = None

    @property
    def delivered(self) -> int:
        """The percentage `/flags`, the flags file and the webhook deliver."""
        return self.percent if self.shadow is None else self.shadow

    def stage(self, plan: Plan) -> Stage | None:
        if self.stage_index is None:
            return None
        return plan.stages[self.stage_index]


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    shadow: bool = False  # `/rollout start NAME shadow`
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
class Confirm:
    """A second person confirms the pending step `request` (None: whichever is pending)."""

    request: int | None = None
    verb = "confirm"


@dataclass(frozen=True)
class Cancel:
    """The asker, or anyone who may make the step, withdraws the pending step."""

    request: int | None = None
    verb = "cancel"


@dataclass(frozen=True)
class Expire:
    """The bot clears a pending step nobody confirmed in time."""

    request: int
    verb = "expire"


@dataclass(frozen=True)
class Evaluate:
    """The bot's own look at a rollout after measuring its gates or at a soak's end:
    roll back on a gate red for its whole window, page on-call for a gate unknown past
    its grace, say when gates start or stop holding it (unknown: no advance), advance (or
    complete) after a green soak. Observations carry `since`."""

    verb = "evaluate"


Command = Start | Advance | Pause | Resume | Rollback | Confirm | Cancel | Expire | Evaluate


@dataclass(frozen=True)
class Context:
    """Who acts (None: the bot itself) and whether every advance is frozen right now."""

    person: Person | None = None
    emergency: EmergencyFreeze | None = None


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
    asked_by: str = ""  # the two-person rule: who asked for the step
    confirmed_by: str = ""  # and who confirmed it
    window: str = ""  # the freeze that applied, if one did


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
    who: tuple[str, ...] = ()  # user or group ids who may do what was refused


# --- decide ---------------------------------------------------------------------------


def decide(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    command: Command,
    now: datetime,
    context: Context = Context(),
) -> Decision | Refusal:
    person = context.person
    if person is not None and not isinstance(command, Confirm | Cancel):
        step = step_of(command)
        if not spec.policy.may(step, person):
            return not_allowed(spec.policy, step, spec.name)
    result = _decide(spec, status, observations, command, now, context)
    if (
        isinstance(result, Decision)
        and result.status.shadow is not None
        and not spec.page_in_shadow
    ):  # a shadow run pages nobody: what it would have paged for is in its messages
        effects = tuple(e for e in result.effects if not isinstance(e, OpenIncident))
        result = replace(result, effects=effects)
    return result


def _decide(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    command: Command,
    now: datetime,
    context: Context,
) -> Decision | Refusal:
    match command:
        case Start() | Advance() | Resume():
            return _raise(spec, status, observations, command, now, context)
        case Pause():
            return _pause(spec, status, command)
        case Rollback():
            return _rollback(spec, status, command, now)
        case Confirm():
            return _confirm(spec, status, observations, command, now, context)
        case Cancel():
            return _cancel(spec, status, command, context)
        case Expire():
            return _expire(spec, status, command, now)
        case Evaluate():
            return _evaluate(spec, status, observations, now, context)


def step_of(command: Command) -> str:
    """The policy's name for what a command does: its verb, or "force"."""
    if isinstance(command, Advance) and command.force:
        return "force"
    return command.verb


_ROLE_WORDS = {
    Role.LEAD: "a lead",
    Role.OPERATOR: "an operator",
    Role.ROLLBACK: "someone under `roles.rollback`",
    Role.OWNER: "an owner of {name}",
}
_STEP_WORDS = {
    "force": "force an advance of {name}",
    "freeze": "freeze every rollout",
    "unfreeze": "lift the freeze on every rollout",
}


def not_allowed(policy: Policy, step: str, name: str = "") -> Refusal:
    """Which role a step needs, and who holds it."""
    held = [r for r in policy.roles_allowed(step) if policy.holders.get(r)]
    roles = held or [r for r in policy.roles_allowed(step) if r is not Role.OWNER]
    words = [_ROLE_WORDS[r].format(name=name) for r in roles]
    needs = " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]
    action = _STEP_WORDS.get(step, f"{step} {name}").format(name=name).strip()
    return Refusal(
        f"You may not {action}: that needs {needs}.",
        "Ask one of them, or change the roles in the config.",
        who=policy.who_may(step),
    )


def _raise(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    command: Start | Advance | Resume,
    now: datetime,
    context: Context,
    *,
    asked_by: str = "",
) -> Decision | Refusal:
    """A step that may raise exposure: the freeze and the two-person rule apply."""
    name = spec.name
    if status.pending is not None and not asked_by:
        return Refusal(
            f"{name} has a step waiting for a second person: {pending_words(status.pending)}.",
            f"Another person types `/rollout confirm {name}`, or `/rollout cancel {name}`"
            " withdraws it.",
        )
    match command:
        case Start():
            result = _start(spec, status, command, now)
        case Advance():
            result = _advance(spec, status, observations, command, now)
        case Resume():
            result = _resume(spec, status, now)
    if isinstance(result, Refusal):
        return result
    frozen = spec.policy.frozen(now, context.emergency)
    if frozen is not None and result.status.percent > status.percent:
        return frozen_refusal(frozen, spec.policy.timezone)
    person = context.person
    step = step_of(command)
    to = result.status.percent
    if person is not None and not asked_by and spec.policy.needs_two(step, to):
        return _request(spec, status, command, person, to, now)
    if asked_by and person is not None:
        change = replace(result.change, asked_by=asked_by, confirmed_by=person.user)
        result = replace(result, change=change)
    return result


def frozen_refusal(frozen: Frozen, timezone: tzinfo) -> Refusal:
    if frozen.emergency:
        return Refusal(
            f"Every advance is frozen: {frozen.reason}.",
            "A lead lifts it with `/rollout unfreeze`. Pause, rollback and ack still work.",
        )
    until = "" if frozen.until is None else f" until {local_words(frozen.until, timezone)}"
    return Refusal(
        f"Advances are frozen{until}: freeze window {frozen.reason}.",
        "Try again after the window. Pause, rollback and ack still work.",
    )


def local_words(moment: datetime, timezone: tzinfo) -> str:
    """A time in the config's timezone: "Sat 2026-12-05 08:00 (Europe/Paris)"."""
    local = moment.astimezone(timezone)
    return f"{local:%a %Y-%m-%d %H:%M} ({local.tzname()})"


def freeze_all(
    policy: Policy,
    person: Person,
    current: EmergencyFreeze | None,
    reason: str,
    now: datetime,
) -> EmergencyFreeze | Refusal:
    """`/rollout freeze REASON`: leads stop every advance of every rollout."""
    if not policy.may("freeze", person):
        return not_allowed(policy, "freeze")
    if current is not None:
        return Refusal(
            f"Every rollout is already frozen: {current.reason}.",
            "A lead lifts it with `/rollout unfreeze`.",
        )
    if not reason.strip():
        return Refusal(
            "A freeze needs a reason, shown in every status and kept in the audit log.",
            "Type `/rollout freeze REASON`, e.g. `/rollout freeze incident 4711 in progress`.",
        )
    return EmergencyFreeze(reason.strip(), person.user, now)


def unfreeze_all(
    policy: Policy, person: Person, current: EmergencyFreeze | None
) -> EmergencyFreeze | Refusal:
    """`/rollout unfreeze`: the freeze that is lifted."""
    if not policy.may("unfreeze", person):
        return not_allowed(policy, "unfreeze")
    if current is None:
        return Refusal("Nothing is frozen.", "Type `/rollout status` to see every rollout.")
    return current


def pending_words(pending: PendingStep) -> str:
    what = {"start": "start", "resume": "resume"}.get(pending.command.verb, "advance")
    forced = isinstance(pending.command, Advance) and pending.command.force
    return f"{what} to {pending.to_percent} %" + (" (forced)" if forced else "")


def _request(
    spec: RolloutSpec,
    status: RolloutStatus,
    command: Start | Advance | Resume,
    person: Person,
    to: int,
    now: datetime,
) -> Decision:
    """The step is only asked for: a second person confirms it within the time allowed."""
    assert spec.policy.two_person is not None
    within = spec.policy.two_person.confirm_within
    pending = PendingStep(status.version + 1, command, person.user, now, now + within, to)
    new = replace(status, pending=pending, version=status.version + 1)
    reason = command.reason if isinstance(command, Advance) else ""
    forced = isinstance(command, Advance) and command.force
    change = Change(
        "request", status.state, status.state, status.percent, to, reason, forced, person.user
    )
    return Decision(new, change, (Announce(),))


def _open_pending(
    spec: RolloutSpec, status: RolloutStatus, request: int | None
) -> PendingStep | Refusal:
    pending = status.pending
    if pending is not None and request in (None, pending.id):
        return pending
    name = spec.name
    if request is not None:
        return Refusal(
            f"That request is no longer open: {name} changed since it was asked "
            f"and is now {state_words(status)}. Nothing was done.",
            f"Type `/rollout status {name}` and ask again if the step is still wanted.",
        )
    return Refusal(
        f"{name} has no step waiting for confirmation; it is {state_words(status)}.",
        f"Type `/rollout status {name}` to see where it stands.",
    )


def _confirm(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    command: Confirm,
    now: datetime,
    context: Context,
) -> Decision | Refusal:
    found = _open_pending(spec, status, command.request)
    if isinstance(found, Refusal):
        return found
    pending, person, name = found, context.person, spec.name
    if now >= pending.expires_at:
        return Refusal(
            f"The request to {pending_words(pending)} expired; nothing was done.",
            "Ask again if the step is still wanted.",
        )
    step = step_of(pending.command)
    if person is None or person.user == pending.asker:
        others = tuple(u for u in spec.policy.who_may(step) if u != pending.asker)
        return Refusal(
            "You asked for this step, so you cannot confirm it: the two-person rule needs "
            "someone else.",
            f"Ask another person to press Confirm or type `/rollout confirm {name}`.",
            who=others,
        )
    if not spec.policy.may(step, person):
        return not_allowed(spec.policy, step, name)
    cleared = replace(status, pending=None)
    return _raise(
        spec, cleared, observations, pending.command, now, context, asked_by=pending.asker
    )


def _cancel(
    spec: RolloutSpec, status: RolloutStatus, command: Cancel, context: Context
) -> Decision | Refusal:
    found = _open_pending(spec, status, command.request)
    if isinstance(found, Refusal):
        return found
    person = context.person
    step = step_of(found.command)
    if person is not None and person.user != found.asker and not spec.policy.may(step, person):
        return not_allowed(spec.policy, step, spec.name)
    return _withdraw(status, found, "cancel")


def _expire(
    spec: RolloutSpec, status: RolloutStatus, command: Expire, now: datetime
) -> Decision | Refusal:
    pending = status.pending
    if pending is None or pending.id != command.request or now < pending.expires_at:
        return Refusal(NOTHING_TO_DO, f"{spec.name} has no expired request")
    return _withdraw(status, pending, "expire")


def _withdraw(status: RolloutStatus, pending: PendingStep, verb: str) -> Decision:
    new = replace(status, pending=None, version=status.version + 1)
    change = Change(
        verb,
        status.state,
        status.state,
        status.percent,
        pending.to_percent,
        pending_words(pending),
        asked_by=pending.asker,
    )
    return Decision(new, change, (Announce(),))


def _start(
    spec: RolloutSpec, status: RolloutStatus, command: Start, now: datetime
) -> Decision | Refusal:
    if status.state in ACTIVE_STATES:
        return Refusal(
            f"{spec.name} is already running ({status.state.value} at {status.percent} %).",
            f"To move it, type `/rollout advance next {spec.name}`; to stop it, "
            f"`/rollout rollback {spec.name}`.",
        )
    first = spec.plan.stages[0]
    shadow = command.shadow or spec.advance is AdvanceMode.SHADOW
    new = RolloutStatus(
        state=State.PROGRESSING,
        percent=first.percent,
        stage_index=0,
        stage_started_at=now,
        version=status.version + 1,
        shadow=status.delivered if shadow else None,
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
        # Green time counts, as for the automatic advance; red gates are said below.
        ends = soak_ends_at(spec, status, observations) or status.stage_started_at + stage.soak
        left = ends - now
        soaked = stage.soak - left
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
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    now: datetime,
    context: Context,
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
    soak_left = _green_soak_left(spec, status.stage_started_at, stage.soak, observations, now)
    if soak_left:
        return Refusal(NOTHING_TO_DO, soak_left)
    index = spec.plan.next_index_above(status.percent)
    if index is None:
        watch = format_duration(stage.soak)
        return _complete(spec, status, reason=f"the {watch} watch ended green")
    if spec.advance is AdvanceMode.MANUAL and status.shadow is None:
        return Refusal(NOTHING_TO_DO, "the soak ended green; advance is manual")
    target = spec.plan.stages[index]
    waiting = _auto_advance_waits(spec, target.percent, now, context)
    if waiting is not None:
        if status.waiting == waiting:
            return Refusal(NOTHING_TO_DO, waiting.reason)
        return _wait(status, waiting, target.percent)
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


def _auto_advance_waits(
    spec: RolloutSpec, to: int, now: datetime, context: Context
) -> Waiting | None:
    """A green soak that may not advance by itself: frozen, or two people needed."""
    frozen = spec.policy.frozen(now, context.emergency)
    if frozen is not None:
        if frozen.emergency:
            return Waiting(f"every advance is frozen: {frozen.reason}", frozen=True)
        return Waiting(f"freeze window {frozen.reason}", frozen.until, frozen=True)
    if spec.policy.needs_two("advance", to):
        return Waiting(f"the step to {to} % needs two people (the two-person rule)")
    return None


def _wait(status: RolloutStatus, waiting: Waiting, to: int) -> Decision:
    new = replace(status, waiting=waiting, version=status.version + 1)
    window = waiting.reason if waiting.frozen else ""
    change = Change(
        "wait", status.state, status.state, status.percent, to, waiting.reason, window=window
    )
    return Decision(new, change, (Announce(),))


def green_since(
    gates: tuple[str, ...], stage_started_at: datetime, observations: Observations
) -> datetime | None:
    """Since when the stage has been green without a break: its start, or the latest
    moment a gate turned green after it. None while a gate is not green (or unmeasured):
    the soak then counts from whenever every gate is green again."""
    green_from = stage_started_at
    for name in gates:
        view = observations.get(name)
        if view is None or view.outcome is not Outcome.PASS:
            return None
        green_from = max(green_from, view.since)
    return green_from


def soak_ends_at(
    spec: RolloutSpec, status: RolloutStatus, observations: Observations
) -> datetime | None:
    """When the current stage will have soaked green, as `decide` judges it: the green
    stretch's start plus the stage's soak. None before a stage, or while a gate is not
    green. Checkpoints, App Home and the dashboard say this, never their own sum."""
    stage = status.stage(spec.plan)
    if stage is None or status.stage_started_at is None:
        return None
    since = green_since(spec.gates, status.stage_started_at, observations)
    return None if since is None else since + stage.soak


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
    for name in spec.gates:
        view = observations.get(name)
        if view is None:
            return f"gate {name} is not measured yet"
        if view.outcome is not Outcome.PASS:
            return f"gate {name} is {view.outcome.value}"
        if not view.fresh(now):
            return f"gate {name} was {stale_words(view, now)}"
    green_from = green_since(spec.gates, stage_started_at, observations)
    assert green_from is not None  # every gate is green, checked above
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
        side = view.side
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
    new = replace(new, pending=None, waiting=None)  # a rollout that moved drops both
    if verb != "start":
        new = replace(new, shadow=old.shadow)  # a shadow run stays one until started again
    if new.state not in ACTIVE_STATES or new.percent == 0:
        new = replace(new, held_by=())  # no traffic exposed: no gate holds it any more
    change = Change(verb, old.state, new.state, old.percent, new.percent, reason, forced)
    effects: list[Effect] = [Announce(broadcast=broadcast, new_thread=new_thread)]
    if new.delivered != old.delivered:
        effects.insert(
            0, SetPercent(spec.flag, new.delivered, spec.plan.flags_on_at(new.delivered))
        )
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
