"""Block Kit messages, built by pure functions of data. All Slack-facing text lives here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.domain.durations import format_duration
from bot.domain.gates import GateHold, GateView, Outcome, fmt_value, held_words
from bot.domain.policy import EmergencyFreeze, Frozen
from bot.domain.rollout import (
    HOLD_CHANGE,
    HOLD_END,
    HOLD_START,
    Change,
    PendingStep,
    Refusal,
    RolloutSpec,
    RolloutStatus,
    State,
    Waiting,
    pending_words,
    state_words,
)
from bot.render import buttons as actions
from bot.render.overview_model import verb_words

Block = dict[str, Any]
SECTION_LIMIT = 3000

_STATE_MARK = {
    State.PENDING: "⚪",
    State.PROGRESSING: "🟢",
    State.PAUSED: "⏸️",
    State.ROLLED_BACK: "⏪",
    State.COMPLETED: "✅",
}


_ASKED_ONLY = frozenset({"request", "cancel", "expire", "wait"})


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


_USER_ID = re.compile(r"[UW][A-Z0-9]{1,30}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{1,30}")


def mention(actor: str) -> str:
    """A person by a mention (Slack draws their name); anything that is not a user ID
    (the bot itself, Alertmanager, a malformed ID) as inert text."""
    return f"<@{actor}>" if _USER_ID.fullmatch(actor) else escape(actor)


def who_words(ids: Sequence[str]) -> str:
    """Users and user groups, as mentions."""
    if not ids:
        return "nobody (no one holds that role in the config)"
    return ", ".join(f"<!subteam^{i}>" if _GROUP_ID.fullmatch(i) else mention(i) for i in ids)


def refusal_text(refusal: Refusal) -> str:
    """A refusal from the domain, as the person who typed the command reads it. It may
    quote a reason someone typed, and the domain writes no Slack markup: all of it is
    escaped; who may act instead is added as mentions."""
    text = escape(refusal.problem)
    if refusal.who:
        text += f" Who may: {who_words(refusal.who)}."
    return f"{text}\n{escape(refusal.hint)}".strip()


def request_reply(spec: RolloutSpec, pending: PendingStep) -> str:
    return (
        f"Asked: {pending_words(pending)} of {escape(spec.name)} needs a second person (the "
        f"two-person rule). Someone else who may make this step presses Confirm in the thread"
        f" or types `/rollout confirm {escape(spec.name)}` before "
        f"{slack_date(pending.expires_at)}; "
        "otherwise the request expires."
    )


def policy_lines(
    pending: PendingStep | None, waiting: Waiting | None, frozen: Frozen | None = None
) -> list[str]:
    """What the policy holds back: a step waiting for a second person, an automatic
    advance that waits, and a freeze window holding now (the emergency freeze has its
    own banner)."""
    lines = []
    if pending is not None:
        lines.append(
            f"⏳ Waiting for a second person: {pending_words(pending)}, asked by "
            f"{mention(pending.asker)}; expires {slack_date(pending.expires_at)}"
        )
    if waiting is not None:
        then = f"; goes on by itself {slack_date(waiting.until)}" if waiting.until else ""
        lines.append(f"⏳ The automatic advance waits: {escape(waiting.reason)}{then}")
    if frozen is not None and not frozen.emergency:
        until = f" until {slack_date(frozen.until)}" if frozen.until else ""
        lines.append(f"🧊 Freeze window{until}: {escape(frozen.reason)}")
    return lines


def freeze_line(freeze: EmergencyFreeze) -> str:
    return (
        f"🧊 Every advance is frozen since {slack_date(freeze.at)} by {mention(freeze.by)}: "
        f"{escape(freeze.reason)}. A lead lifts it with `/rollout unfreeze`."
    )


def freeze_message(freeze: EmergencyFreeze) -> dict[str, Any]:
    text = (
        f"🧊 {mention(freeze.by)} froze every rollout: {escape(freeze.reason)}\n"
        "No advance happens, typed or automatic, until a lead types `/rollout unfreeze`. "
        "Pause, rollback and ack still work."
    )
    return {"text": text, "blocks": [section(text)]}


def unfreeze_message(freeze: EmergencyFreeze, by: str) -> dict[str, Any]:
    text = (
        f"▶️ {mention(by)} lifted the freeze on every rollout (frozen by "
        f"{mention(freeze.by)} {slack_date(freeze.at)}: {escape(freeze.reason)}). "
        "Rollouts whose soak ended green go on now."
    )
    return {"text": text, "blocks": [section(text)]}


def request_buttons(spec: RolloutSpec, pending: PendingStep) -> Block:
    value = actions.RequestValue(spec.name, pending.id).encode()
    return {
        "type": "actions",
        "block_id": f"request:{spec.name}:{pending.id}",
        "elements": [
            button("Confirm", actions.CONFIRM, value, "primary"),
            button("Cancel", actions.CANCEL, value),
        ],
    }


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
    return f"{escape(spec.name)}: {state_words(status)}{held}"


def held_text(status: RolloutStatus) -> str:
    """The gates holding the rollout: "error_rate — Prometheus unreachable since <date>"."""
    return held_words(escaped_holds(status.held_by), slack_date)


def escaped_holds(holds: Sequence[GateHold]) -> list[GateHold]:
    """Holds whose gate names (from the config) are inert text, to go beside dates."""
    return [replace(h, gate=escape(h.gate)) for h in holds]


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
        f"{mark} *{escape(spec.name)}* · flag `{escape(spec.flag)}` · {state_words(status)}",
        stage_line(spec, status),
        f"Plan *{escape(spec.plan.name)}*: {plan} %",
        *_held_lines(status),
        *policy_lines(status.pending, status.waiting),
    ]
    blocks = [section("\n".join(lines))]
    buttons = rollout_buttons(spec, status)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"rollout:{spec.name}", "elements": buttons})
    if status.pending is not None:
        blocks.append(request_buttons(spec, status.pending))
    return {"text": summary_text(spec, status), "blocks": blocks}


def rollout_buttons(spec: RolloutSpec, status: RolloutStatus) -> list[Block]:
    value = actions.ButtonValue(spec.name, status.version).encode()
    buttons: list[Block] = []
    if status.state is State.PROGRESSING and status.pending is None:  # one step at a time
        advance = button("Advance to next", actions.ADVANCE, value, "primary")
        advance["confirm"] = advance_confirm(spec, status)
        buttons.append(advance)
    if status.state is State.PROGRESSING:  # pausing never waits for anyone
        buttons.append(button("Pause", actions.PAUSE, value))  # asks why in a modal
    if status.state is State.PAUSED:
        buttons.append(button("Resume", actions.RESUME, value, "primary"))
    if status.percent > 0 and status.state is not State.ROLLED_BACK:
        # Asks why in a modal, which is its confirmation too (`bot.inbound.reason_modal`).
        buttons.append(button("Roll back", actions.ROLLBACK, value, "danger"))
    return buttons


def advance_confirm(spec: RolloutSpec, status: RolloutStatus) -> Block:
    """The dialog Slack shows before an Advance click is sent: where to, and what it means."""
    index = status.stage_index
    stages = spec.plan.stages
    if index is not None and index + 1 < len(stages):
        where = f"from {status.percent} % to {stages[index + 1].percent} % of traffic"
    else:
        where = f"past its last stage ({status.percent} %)"
    return {
        "title": {"type": "plain_text", "text": "Advance?"},
        "text": {
            "type": "mrkdwn",
            "text": f"Advance *{escape(spec.name)}* {where}? The gates are checked first; "
            "the soak starts again at the new stage.",
        },
        "confirm": {"type": "plain_text", "text": "Advance"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "primary",
    }


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
        side = view.side
        head = (
            f"🔴 Gate *{escape(view.name)}*: measured *{fmt_value(view.value)}*, {side} the"
            f" threshold *{fmt_value(view.threshold)}*, for the whole window of *{window}*"
        )
    elif view.outcome is Outcome.FAIL:
        head = (
            f"🔴 Gate *{escape(view.name)}*: {escape(view.detail)} for the whole window of"
            f" *{window}*"
        )
    else:
        what = "no data" if view.outcome is Outcome.NO_DATA else "metrics source down"
        head = f"🟡 Gate *{escape(view.name)}*: {what}{now_words} ({escape(view.detail)})"
    lines = [head, f"Query: `{escape(view.query)}`"]
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
    verb = verb_words(change.verb)
    if change.from_percent != change.to_percent:
        movement = f"{change.from_percent} % → *{change.to_percent} %*"
    else:
        movement = f"at {change.to_percent} %"
    line = f"{mention(actor)} {verb} *{escape(spec.name)}* {movement}"
    if source == "button":
        line += " (button)"
    if source == "automatic":
        line += " automatically"
    if change.confirmed_by:
        asked, confirmed = mention(change.asked_by), mention(change.confirmed_by)
        line += f" (asked by {asked}, confirmed by {confirmed})"
    lines = [line]
    extra: list[Block] = []
    if change.verb == "request" and status.pending is not None:
        lines.append(
            "Two-person rule: another person who may make this step confirms it before "
            f"{slack_date(status.pending.expires_at)}, or it expires."
        )
        extra.append(request_buttons(spec, status.pending))
    if change.verb == "wait":
        lines = [_wait_line(spec, change, status)]
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
            f"Held at {status.percent} % until someone types"
            f" `/rollout resume {escape(spec.name)}`."
        )
    if status.state is State.ROLLED_BACK:
        lines.append(f"Held at 0 % until someone types `/rollout start {escape(spec.name)}`.")
    moved = change.verb not in _ASKED_ONLY  # a request, its end or a wait moves nothing
    if moved and status.state is State.PROGRESSING and status.stage_index is not None:
        stage = spec.plan.stages[status.stage_index]
        lines.append(f"Soak at this stage: {format_duration(stage.soak)}.")
    text = "\n".join(lines)
    return {"text": text.replace("*", ""), "blocks": [section(text), *extra]}


def _wait_line(spec: RolloutSpec, change: Change, status: RolloutStatus) -> str:
    head = (
        f"⏳ *{escape(spec.name)}* soaked green at {change.from_percent} %, but does not"
        f" advance to {change.to_percent} % yet: {escape(change.reason)}."
    )
    waiting = status.waiting
    if waiting is not None and waiting.until is not None:
        return head + f" It goes on by itself {slack_date(waiting.until)}."
    if waiting is not None and waiting.frozen:
        return head + " It goes on by itself when a lead types `/rollout unfreeze`."
    return head + (
        f" A lead types `/rollout advance next {escape(spec.name)}` and another person"
        " confirms it."
    )


def hold_line(
    spec: RolloutSpec, change: Change, status: RolloutStatus, gates: Sequence[GateView]
) -> str:
    """The one thread line for a hold starting, changing or ending. `gates` are the held
    gates (start, change) or the gates measured again (end)."""
    name = f"*{escape(spec.name)}*"
    if change.verb == HOLD_END:
        line = f"▶️ {name} is no longer held: {escape(change.reason)}."
        red = [v for v in gates if v.outcome is Outcome.FAIL]
        if red:
            window = format_duration(max(v.window for v in red))
            names = ", ".join(escape(v.name) for v in red)
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
    specs: Sequence[RolloutSpec],
    statuses: dict[str, RolloutStatus],
    *,
    freeze: EmergencyFreeze | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    lines = [freeze_line(freeze)] if freeze is not None else []
    for spec in specs:
        status = statuses[spec.name]
        parts = [
            f"{_STATE_MARK[status.state]} *{escape(spec.name)}* ({escape(spec.flag)}) ·"
            f" {state_words(status)}",
            stage_line(spec, status),
        ]
        parts.extend(_held_lines(status))
        window = spec.policy.frozen(now) if now is not None else None
        parts.extend(policy_lines(status.pending, status.waiting, window))
        lines.append("\n".join(parts))
    text = "\n\n".join(lines) or "No rollouts are configured."
    return {"text": text, "blocks": [section(text)]}


def history_message(name: str, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not events:
        text = f"*{escape(name)}* has no history yet."
        return {"text": text, "blocks": [section(text)]}
    lines = [f"*{escape(name)}* — last {len(events)} changes:"]
    for e in events:
        verb = verb_words(e["verb"])
        line = f"• {slack_date(e['at'])} {mention(e['actor'])} {verb}"
        if not e.get("every_rollout"):
            line += f" {e['from_percent']} % → {e['to_percent']} % ({escape(e['source'])})"
        policy = e.get("policy") or {}
        if policy.get("confirmed_by"):
            line += (
                f" — asked by {mention(policy['asked_by'])},"
                f" confirmed by {mention(policy['confirmed_by'])}"
            )
        elif policy.get("asked_by") and e["verb"] != "request":
            line += f" — asked by {mention(policy['asked_by'])}"
        if e["reason"]:
            line += f" — {escape(e['reason'])}"
        if policy.get("window"):
            line += f" — {escape(policy['window'])}"
        lines.append(line)
    text = "\n".join(lines)
    return {"text": text, "blocks": [section(text)]}


def unsealed_click_text() -> str:
    """A click on a button whose value this bot did not seal: drawn before buttons were
    sealed, by another key, or not by this bot at all."""
    return (
        "This button was not drawn by this bot, or its message is older than the bot's "
        "signed buttons: nothing was done. Type `/rollout status` to see where things "
        "stand and act with a command; the rollout's message gets fresh buttons at its "
        "next change."
    )


def unknown_rollout_click_text(name: str) -> str:
    return (
        f"This button is for a rollout named `{escape(name[:64])}`, which is not "
        "configured. Nothing was done. Type `/rollout status` for the rollouts there are."
    )
