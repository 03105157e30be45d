"""Block Kit messages, built by pure functions of data. All Slack-facing text lives here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.domain.durations import format_duration
from bot.domain.gates import GateView, Outcome, fmt_value, held_words
from bot.domain.rollout import (
    HOLD_CHANGE,
    HOLD_END,
    HOLD_START,
    Change,
    RolloutSpec,
    RolloutStatus,
    State,
    state_words,
)
from bot.slack import actions

Block = dict[str, Any]
SECTION_LIMIT = 3000

_STATE_MARK = {
    State.PENDING: "⚪",
    State.PROGRESSING: "🟢",
    State.PAUSED: "⏸️",
    State.ROLLED_BACK: "⏪",
    State.COMPLETED: "✅",
}
_VERB_WORDS = {
    "start": "started",
    "advance": "advanced",
    "pause": "paused",
    "resume": "resumed",
    "rollback": "rolled back",
    "complete": "completed",
    "hold": "held",
    HOLD_START: "held",
    HOLD_CHANGE: "updated the hold",
    HOLD_END: "lifted the hold",
}


def progress_bar(percent: int, width: int = 10) -> str:
    filled = percent * width // 100
    if percent > 0 and filled == 0:
        filled = 1  # any exposure shows
    return "▰" * filled + "▱" * (width - filled)


def slack_date(moment: datetime, fallback_format: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A time each reader sees in their own timezone."""
    stamp = int(moment.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{moment.strftime(fallback_format)}>"


def escape(text: str) -> str:
    """Text someone typed, made inert in a message: Slack's three escapes, so that a
    `<!channel>`, `<@U…>` or `<https://…|link>` in a reason shows as typed and pings no one.
    Only for user text: the bot's own mentions, dates and links are markup on purpose."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(actor: str) -> str:
    return f"<@{actor}>" if actor[:1] in ("U", "W") else actor


def section(text: str) -> Block:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def stage_line(spec: RolloutSpec, status: RolloutStatus) -> str:
    stages = spec.plan.stages
    if status.state is State.ROLLED_BACK:
        where = "no traffic"
    elif status.stage_index is None:
        where = "not started"
    else:
        where = f"stage {status.stage_index + 1} of {len(stages)}"
    return f"`{progress_bar(status.percent)}` *{status.percent} %* · {where}"


def summary_text(spec: RolloutSpec, status: RolloutStatus) -> str:
    """One line for notifications and fallbacks."""
    held = f", held: {held_text(status)}" if status.held_by else ""
    return f"{spec.name}: {state_words(status)}{held}"


def held_text(status: RolloutStatus) -> str:
    """The gates holding the rollout: "error_rate — Prometheus unreachable since <date>"."""
    return held_words(status.held_by, slack_date)


def _held_lines(status: RolloutStatus) -> list[str]:
    lines = [f"Held: {escape(status.hold_reason)}"] if status.hold_reason else []
    if status.held_by:
        lines.append(f"Held: {held_text(status)}")
    return lines


def parent_message(spec: RolloutSpec, status: RolloutStatus) -> dict[str, Any]:
    """The rollout's thread parent: current stage, percentage, progress bar and buttons."""
    mark = _STATE_MARK[status.state]
    plan = " → ".join(str(p) for p in spec.plan.percents)
    lines = [
        f"{mark} *{spec.name}* · flag `{spec.flag}` · {state_words(status)}",
        stage_line(spec, status),
        f"Plan *{spec.plan.name}*: {plan} %",
        *_held_lines(status),
    ]
    blocks = [section("\n".join(lines))]
    buttons = rollout_buttons(spec, status)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"rollout:{spec.name}", "elements": buttons})
    return {"text": summary_text(spec, status), "blocks": blocks}


def rollout_buttons(spec: RolloutSpec, status: RolloutStatus) -> list[Block]:
    value = actions.ButtonValue(spec.name, status.version).encode()
    buttons: list[Block] = []
    if status.state is State.PROGRESSING:
        buttons.append(button("Advance to next", actions.ADVANCE, value, "primary"))
        buttons.append(button("Pause", actions.PAUSE, value))
    if status.state is State.PAUSED:
        buttons.append(button("Resume", actions.RESUME, value, "primary"))
    if status.percent > 0 and status.state is not State.ROLLED_BACK:
        rollback = button("Roll back", actions.ROLLBACK, value, "danger")
        rollback["confirm"] = {
            "title": {"type": "plain_text", "text": "Roll back?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Roll *{spec.name}* back from {status.percent} % to 0 %? "
                "It stays held until someone starts it again.",
            },
            "confirm": {"type": "plain_text", "text": "Roll back"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
        buttons.append(rollback)
    return buttons


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def prometheus_link(prometheus_url: str, query: str) -> str:
    """The query in the Prometheus UI's graph page."""
    return f"{prometheus_url.rstrip('/')}/graph?g0.expr={quote(query, safe='')}&g0.tab=0"


def gate_lines(view: GateView, prometheus_url: str, now_words: str = "") -> list[str]:
    """A gate's evidence: name, measured value, threshold, window, query and a link."""
    window = format_duration(view.window)
    if view.outcome is Outcome.FAIL and view.value is not None:
        side = "below" if view.detail.startswith("below") else "above"
        head = (
            f"🔴 Gate *{view.name}*: measured *{fmt_value(view.value)}*, {side} the threshold "
            f"*{fmt_value(view.threshold)}*, for the whole window of *{window}*"
        )
    elif view.outcome is Outcome.FAIL:
        head = f"🔴 Gate *{view.name}*: {view.detail} for the whole window of *{window}*"
    else:
        what = "no data" if view.outcome is Outcome.NO_DATA else "metrics source down"
        head = f"🟡 Gate *{view.name}*: {what}{now_words} ({view.detail})"
    lines = [head, f"Query: `{view.query}`"]
    if prometheus_url and view.query:
        link = prometheus_link(prometheus_url, view.query)
        lines.append(f"<{link}|Open the query in Prometheus>")
    return lines


def change_message(
    spec: RolloutSpec,
    change: Change,
    status: RolloutStatus,
    actor: str,
    source: str,
    *,
    gates: Sequence[GateView] = (),
    prometheus_url: str = "",
) -> dict[str, Any]:
    """A thread reply saying what changed, who did it and why."""
    if change.verb in (HOLD_START, HOLD_CHANGE, HOLD_END):
        text = hold_line(spec, change, status, gates)
        return {"text": text.replace("*", ""), "blocks": [section(text)]}
    verb = _VERB_WORDS.get(change.verb, change.verb)
    if change.from_percent != change.to_percent:
        movement = f"{change.from_percent} % → *{change.to_percent} %*"
    else:
        movement = f"at {change.to_percent} %"
    line = f"{mention(actor)} {verb} *{spec.name}* {movement}"
    if source == "button":
        line += " (button)"
    if source == "automatic":
        line += " automatically"
    lines = [line]
    if change.forced:
        lines.append(f"⚠️ Forced: {escape(change.reason)}")
    elif gates:
        for view in gates:
            lines.extend(gate_lines(view, prometheus_url))
        if change.verb == "hold":
            lines.append("The rollout holds here (no advance) and on-call is paged.")
    elif change.reason:
        lines.append(f"Reason: {escape(change.reason)}")
    if status.state is State.PAUSED and change.verb == "rollback":
        lines.append(
            f"Held at {status.percent} % until someone types `/rollout resume {spec.name}`."
        )
    if status.state is State.ROLLED_BACK:
        lines.append(f"Held at 0 % until someone types `/rollout start {spec.name}`.")
    if status.state is State.PROGRESSING and status.stage_index is not None:
        stage = spec.plan.stages[status.stage_index]
        lines.append(f"Soak at this stage: {format_duration(stage.soak)}.")
    text = "\n".join(lines)
    return {"text": text.replace("*", ""), "blocks": [section(text)]}


def hold_line(
    spec: RolloutSpec, change: Change, status: RolloutStatus, gates: Sequence[GateView]
) -> str:
    """The one thread line for a hold starting, changing or ending. `gates` are the held
    gates (start, change) or the gates measured again (end)."""
    name = f"*{spec.name}*"
    if change.verb == HOLD_END:
        line = f"▶️ {name} is no longer held: {change.reason}."
        red = [v for v in gates if v.outcome is Outcome.FAIL]
        if red:
            window = format_duration(max(v.window for v in red))
            names = ", ".join(v.name for v in red)
            line += f" {names} {'is' if len(red) == 1 else 'are'} red: it rolls back if it"
            line += f" stays red for {window}."
        elif status.state is State.PROGRESSING:
            line += " The soak counts green time from now."
        return line
    if change.verb == HOLD_CHANGE:
        return f"⏸️ {name} is still held at {status.percent} %: {held_text(status)}."
    several = len(status.held_by) > 1
    line = (
        f"⏸️ {name} is held at {status.percent} %: {held_text(status)}. It will not advance"
        f" until {'the gates are' if several else 'the gate is'} measured again"
    )
    waiting = [v for v in gates if not v.escalated]
    if waiting:
        grace = format_duration(min(v.grace for v in waiting))
        line += f"; on-call is paged if this lasts {grace}"
    return line + "."


def status_message(
    specs: Sequence[RolloutSpec], statuses: dict[str, RolloutStatus]
) -> dict[str, Any]:
    lines = []
    for spec in specs:
        status = statuses[spec.name]
        lines.append(
            f"{_STATE_MARK[status.state]} *{spec.name}* ({spec.flag}) · "
            f"{state_words(status)}\n{stage_line(spec, status)}"
            + "".join(f"\n{line}" for line in _held_lines(status))
        )
    text = "\n\n".join(lines) or "No rollouts are configured."
    return {"text": text, "blocks": [section(text)]}


def history_message(name: str, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not events:
        text = f"*{name}* has no history yet."
        return {"text": text, "blocks": [section(text)]}
    lines = [f"*{name}* — last {len(events)} changes:"]
    for e in events:
        verb = _VERB_WORDS.get(e["verb"], e["verb"])
        line = (
            f"• {slack_date(e['at'])} {mention(e['actor'])} {verb} "
            f"{e['from_percent']} % → {e['to_percent']} % ({e['source']})"
        )
        if e["reason"]:
            line += f" — {escape(e['reason'])}"
        lines.append(line)
    text = "\n".join(lines)
    return {"text": text, "blocks": [section(text)]}
