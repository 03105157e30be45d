"""Checkpoint summaries and the daily summary: pure renderers of data to Block Kit.

A checkpoint says at a glance: stage and percentage with a progress bar; time in stage and
what the next step waits for; each gate's latest value against its threshold, and the
worst since the last checkpoint; open incidents and who holds them; what changed since the
last checkpoint. Parts that could not be gathered are named, with why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.domain.durations import format_duration, format_elapsed
from bot.domain.gates import Outcome, fmt_value
from bot.domain.policy import EmergencyFreeze
from bot.domain.rollout import AdvanceMode, RolloutSpec, RolloutStatus, State, state_words
from bot.render.blocks import (
    Block,
    context,
    escape,
    freeze_line,
    mention,
    policy_lines,
    section,
    slack_date,
    stage_line,
)

MAX_BLOCKS = 50
MAX_GATE_LINES = 8
MAX_ROLLOUTS_IN_DAILY = 20

OUTCOME_MARK = {
    Outcome.PASS: "✅ pass",
    Outcome.FAIL: "🔴 FAIL",
    Outcome.NO_DATA: "⚪ no data",
    Outcome.SOURCE_DOWN: "⚠️ source down",
}


@dataclass(frozen=True)
class GateLine:
    name: str
    outcome: Outcome
    value: float | None
    threshold: float | None
    worst: float | None = None  # the worst value since the last checkpoint
    fail_above: bool = True
    detail: str = ""


@dataclass(frozen=True)
class IncidentLine:
    id: str
    summary: str
    holder: str | None = None  # who acknowledged it; None while it pages


@dataclass(frozen=True)
class ChangeLine:
    """A change of the rollout (from → to percent), or a response to one of its incidents
    (`incident` set, no percentages): acknowledged, resolved, silenced."""

    at: datetime
    actor: str
    verb: str
    from_percent: int | None = None
    to_percent: int | None = None
    reason: str = ""
    incident: str = ""

    def text(self) -> str:
        what = (
            escape(self.incident)
            if self.incident
            else f"{self.from_percent} % → {self.to_percent} %"
        )
        reason = f" — {escape(self.reason)}" if self.reason else ""
        return f"• {slack_date(self.at)} {mention(self.actor)} {self.verb} {what}{reason}"


@dataclass(frozen=True)
class CheckpointView:
    spec: RolloutSpec
    status: RolloutStatus
    now: datetime
    gates: Sequence[GateLine] = ()
    incidents: Sequence[IncidentLine] = ()
    changes: Sequence[ChangeLine] = ()
    missing: Sequence[str] = field(default_factory=tuple)  # "gates: Prometheus unreachable"
    freeze: EmergencyFreeze | None = None  # `/rollout freeze`: every advance stopped
    soak_ends: datetime | None = None  # as `decide` judges it (`soak_ends_at`)


def next_step(view: CheckpointView) -> str:
    """What the rollout waits for, in a sentence."""
    spec, status = view.spec, view.status
    name = escape(spec.name)
    if any(i.holder is None for i in view.incidents):
        return "Waits for someone to acknowledge the open incident (`/rollout ack`)."
    if status.state is State.PAUSED:
        why = f" ({escape(status.hold_reason)})" if status.hold_reason else ""
        return f"Held{why}: waits for `/rollout resume {name}`."
    if status.state is State.ROLLED_BACK:
        return f"Held at 0 %: waits for `/rollout start {name}` to begin again."
    if status.state is State.COMPLETED:
        return "Complete: nothing left to do."
    if status.state is State.PENDING:
        return f"Not started: `/rollout start {name}` begins it."
    if status.pending is not None:
        return policy_lines(status.pending, None)[0] + "."
    frozen = spec.policy.frozen(view.now, view.freeze)
    if frozen is not None:
        until = f" until {slack_date(frozen.until)}" if frozen.until else " until lifted"
        what = "every advance is frozen" if frozen.emergency else "freeze window"
        return f"No advance{until}: {what}: {escape(frozen.reason)}."
    if status.waiting is not None:
        return policy_lines(None, status.waiting)[0] + "."
    stage = status.stage(spec.plan)
    if stage is None or status.stage_started_at is None:
        return "Progressing."
    red = [g.name for g in view.gates if g.outcome is not Outcome.PASS]
    final = status.stage_index == len(spec.plan.stages) - 1
    soak_end = view.soak_ends
    if red or soak_end is None:
        gates = ", ".join(escape(g) for g in red) or "not measured yet"
        return (
            f"Waits for green gates ({gates}); its {format_duration(stage.soak)} soak counts "
            "green time only."
        )
    if soak_end > view.now and final:
        return f"Watched at {status.percent} % until {slack_date(soak_end)}, then complete."
    if soak_end > view.now:
        then = (
            "then advances by itself if every gate stays green"
            if spec.advance is AdvanceMode.AUTO
            else "then waits for a manual `/rollout advance next`"
        )
        return f"Soaks until {slack_date(soak_end)}, {then}."
    if final:
        return f"Watch at {status.percent} % done: completes at the next evaluation."
    if spec.advance is AdvanceMode.AUTO:
        return "Soak done: advances at the next evaluation."
    return f"Soak done and gates green: ready for `/rollout advance next {name}`."


def gate_text(gate: GateLine) -> str:
    comparison = ">" if gate.fail_above else "<"
    line = f"{OUTCOME_MARK[gate.outcome]} *{escape(gate.name)}* {fmt_value(gate.value)}"
    if gate.threshold is not None:
        line += f" (fails {comparison} {fmt_value(gate.threshold)})"
    if gate.worst is not None:
        line += f" · worst {fmt_value(gate.worst)}"
    if gate.detail and gate.outcome in (Outcome.NO_DATA, Outcome.SOURCE_DOWN):
        line += f" — {escape(gate.detail)}"
    return line


def gate_lines(gates: Sequence[GateLine]) -> list[str]:
    shown = [gate_text(g) for g in _worst_first(gates)[:MAX_GATE_LINES]]
    if len(gates) > MAX_GATE_LINES:
        shown.append(f"…and {len(gates) - MAX_GATE_LINES} more")
    return shown


def _worst_first(gates: Sequence[GateLine]) -> list[GateLine]:
    order = {Outcome.FAIL: 0, Outcome.SOURCE_DOWN: 1, Outcome.NO_DATA: 2, Outcome.PASS: 3}
    return sorted(gates, key=lambda g: order[g.outcome])


def checkpoint_message(view: CheckpointView) -> dict[str, Any]:
    spec, status = view.spec, view.status
    in_stage = ""
    if status.stage_started_at is not None and status.state is not State.ROLLED_BACK:
        in_stage = f" · {stage_age(view.now - status.stage_started_at)}"
    blocks: list[Block] = [
        *([section(freeze_line(view.freeze))] if view.freeze else []),
        section(
            f"*Checkpoint · {escape(spec.name)}* · {state_words(status)}\n"
            f"{stage_line(spec, status)}{in_stage}\n{next_step(view)}"
        )
    ]
    if spec.gates:
        lines = gate_lines(view.gates) or ["no gate measured yet"]
        blocks.append(section("*Gates*\n" + "\n".join(lines)))
    if view.incidents:
        blocks.append(
            section(
                "*Open incidents*\n"
                + "\n".join(
                    f"• `{escape(i.id)}` {escape(i.summary)} — "
                    + (f"held by {mention(i.holder)}" if i.holder else "paging, not acknowledged")
                    for i in view.incidents
                )
            )
        )
    changes = [c.text() for c in view.changes]
    blocks.append(context("Since the last checkpoint: " + ("\n".join(changes) or "no changes")))
    blocks += missing_blocks(view.missing, room=MAX_BLOCKS - len(blocks))
    text = f"Checkpoint {escape(spec.name)}: {state_words(status)}"
    return {"text": text, "blocks": blocks}


def missing_blocks(missing: Sequence[str], room: int) -> list[Block]:
    """One line per part that could not be gathered, folded to fit in `room` blocks."""
    lines = [f"⚠️ Missing: {escape(part)}" for part in missing]
    if len(lines) > room:
        lines = [*lines[: room - 1], f"⚠️ …and {len(lines) - room + 1} more parts missing"]
    return [context(line) for line in lines]


def daily_summary_message(
    views: Sequence[CheckpointView], now: datetime, charted: int | None = None
) -> dict[str, Any]:
    """One message for the channel: every active rollout, a line or three each. `charted`:
    how many of them get a chart in the thread (all when None)."""
    header: Block = {
        "type": "header",
        "text": {"type": "plain_text", "text": f"Daily rollout summary · {now:%a %d %b}"},
    }
    body: list[Block] = []
    freeze = next((v.freeze for v in views if v.freeze), None)
    if freeze is not None:
        body.append(section(freeze_line(freeze)))
    if not views:
        body.append(section("No rollout is active."))
    for view in views[:MAX_ROLLOUTS_IN_DAILY]:
        red = [g for g in view.gates if g.outcome is not Outcome.PASS]
        gates = (
            "gates not measured at 0 %"
            if view.status.state is State.ROLLED_BACK
            else "all gates green"
            if view.gates and not red
            else "; ".join(gate_text(g) for g in _worst_first(red)[:3]) or "no gates"
        )
        incidents = f" · {len(view.incidents)} open incident(s)" if view.incidents else ""
        body.append(
            section(
                f"*{escape(view.spec.name)}* · {state_words(view.status)}{incidents}\n"
                f"{stage_line(view.spec, view.status)}\n{gates}\n{next_step(view)}"
            )
        )
        body.extend(context(f"⚠️ Missing: {escape(part)}") for part in view.missing)
    tail: list[Block] = []
    if len(views) > MAX_ROLLOUTS_IN_DAILY:
        tail.append(context(f"…and {len(views) - MAX_ROLLOUTS_IN_DAILY} more rollouts"))
    if charted is not None and charted < len(views):
        tail.append(
            context(f"Charts in the thread for the first {charted} of {len(views)} rollouts.")
        )
    room = MAX_BLOCKS - 1 - len(tail)  # the header, then the body, then the tail
    if len(body) > room:
        body = [*body[: room - 1], context("…more in `/rollout status`")]
    blocks = [header, *body, *tail]
    held = sum(1 for v in views if v.status.state is State.ROLLED_BACK)
    text = f"Daily rollout summary: {len(views) - held} active"
    return {"text": text + (f", {held} rolled back" if held else ""), "blocks": blocks}


def stage_age(delta: timedelta) -> str:
    """How long the rollout has been in its stage: `15m in stage`, or under a minute after a
    change, `entered this stage just now` (never `0s in stage`)."""
    elapsed = format_elapsed(delta)
    return "entered this stage just now" if elapsed == "just now" else f"{elapsed} in stage"
