"""The App Home tab: the overview of every rollout for the person who opens it, as Block Kit.

Pure: a function of the overview view-model and the viewer's user ID (and each rollout's
thread link, and a notice after a click). At the top, the incidents paging the viewer, each
with Acknowledge, and those they hold, each with Resolve; each rollout has a button to its
thread in the channel. Within Slack's limits for a Home view: at most 100 blocks, section
text at most 3000 characters, header text at most 150; rollouts that do not fit fold into
one "and N more" line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.domain.durations import format_duration
from bot.domain.gates import held_words
from bot.domain.rollout import State
from bot.render import buttons as actions
from bot.render.blocks import (
    _STATE_MARK,
    Block,
    button,
    context,
    escape,
    escaped_holds,
    freeze_line,
    mention,
    policy_lines,
    progress_bar,
    section,
    slack_date,
)
from bot.render.overview_model import IncidentView, Overview, RolloutView, verb_words

VIEW_BLOCK_LIMIT = 100
MAX_INCIDENTS_SHOWN = 10  # of each kind, at the top
HEADER_LIMIT = 150
_GATE_MARK = {"pass": "🟢", "fail": "🔴", "no_data": "⚪", "source_down": "⚠️"}


def home_view(
    overview: Overview,
    user: str,
    *,
    threads: Mapping[str, str] | None = None,
    notice: str = "",
) -> dict[str, Any]:
    """The `views.publish` view for `user`. `threads`: each rollout's thread, as a link;
    `notice`: what the viewer's last click there did, shown at the top."""
    top: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Rollouts"[:HEADER_LIMIT]}},
        context(
            f"Updated {slack_date(overview.now)} · act with `/rollout` "
            "(`/rollout help` lists every command)"
        ),
        *([section(freeze_line(overview.freeze))] if overview.freeze else []),
        *([section(notice)] if notice else []),
        *_for_you(overview.incidents, user),
        {"type": "divider"},
    ]
    groups = [_rollout_blocks(r, (threads or {}).get(r.name, "")) for r in overview.rollouts]
    body: list[Block] = []
    room = VIEW_BLOCK_LIMIT - len(top) - 1  # keep one block for "and N more"
    shown = 0
    for group in groups:
        if len(body) + len(group) > room:
            break
        body.extend(group)
        shown += 1
    if shown < len(groups):
        hidden = overview.rollouts[shown:]
        names = ", ".join(escape(r.name) for r in hidden[:20]) + (", …" if len(hidden) > 20 else "")
        body.append(
            section(
                f"…and {len(hidden)} more: {names}. Type `/rollout status NAME` for one of them."
            )
        )
    if not groups:
        body.append(section("No rollouts are configured. Add one under `rollouts:` in the config."))
    return {"type": "home", "blocks": top + body}


def _for_you(incidents: tuple[IncidentView, ...], user: str) -> list[Block]:
    """The incidents paging the viewer (Acknowledge) and those they hold (Resolve)."""
    paging = [i for i in incidents if not i.holder and user in i.paged]
    held = [i for i in incidents if i.holder == user]
    blocks: list[Block] = []
    for title, shown, action in (
        ("Paging you", paging, ("Acknowledge", actions.INCIDENT_ACK, "primary")),
        ("Incidents you hold", held, ("Resolve", actions.INCIDENT_RESOLVE, None)),
    ):
        if not shown:
            continue
        blocks.append(section(f"*{title} ({len(shown)})*"))
        for incident in shown[:MAX_INCIDENTS_SHOWN]:
            blocks.append(_incident_line(incident, *action))
        if len(shown) > MAX_INCIDENTS_SHOWN:
            blocks.append(context(f"…and {len(shown) - MAX_INCIDENTS_SHOWN} more"))
    return blocks or [context("You hold no open incidents, and none is paging you.")]


def _incident_line(incident: IncidentView, label: str, action_id: str, style: str | None) -> Block:
    where = f" · *{escape(incident.rollout)}*" if incident.rollout else ""
    line = section(f"• `{escape(incident.id)}` {escape(incident.summary)}{where}")
    if incident.number is not None:
        value = actions.IncidentButtonValue(incident.number).encode()
        line["accessory"] = button(label, action_id, value, style)
    return line


def _rollout_blocks(r: RolloutView, thread: str = "") -> list[Block]:
    mark = _STATE_MARK[State(r.state)]
    where = "not started" if r.stage is None else f"stage {r.stage} of {len(r.stages)}"
    plan = " → ".join(str(p) for p in r.stages)
    lines = [
        f"{mark} *{escape(r.name)}* · flag `{escape(r.flag)}` · {r.words}",
        f"`{progress_bar(r.percent)}` *{r.percent} %* · {where}",
        f"Plan *{escape(r.plan)}*: {plan} %",
    ]
    if r.state == "progressing" and r.soak is not None:
        ends = r.soak_ends_at
        lines.append(
            f"Soaks until {slack_date(ends)}"
            if ends is not None
            else f"Soak of {format_duration(r.soak)}: counts once every gate is green"
        )
    if r.hold_reason:
        lines.append(f"Held: {escape(r.hold_reason)}")
    if r.held_by:
        lines.append(f"Held: {held_words(escaped_holds(r.held_by), slack_date)}")
    lines.extend(policy_lines(r.pending, r.waiting, r.frozen))
    for incident in r.incidents:
        holder = f"held by {mention(incident.holder)}" if incident.holder else "not acknowledged"
        lines.append(f"🚨 `{escape(incident.id)}` {escape(incident.summary)} ({holder})")
    if r.gates:
        lines.append(
            "Gates: "
            + ", ".join(f"{_GATE_MARK.get(g.outcome, '•')} {escape(g.name)}" for g in r.gates)
        )
    blocks = [section("\n".join(lines))]
    if thread:
        blocks[0]["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open thread"},
            "action_id": actions.OPEN_THREAD,
            "url": thread,
        }
    if r.events:
        e = r.events[0]
        last = (
            f"Last: {mention(e.actor)} {verb_words(e.verb)} "
            f"{e.from_percent} % → {e.to_percent} % {slack_date(e.at)}"
        )
        if e.reason:
            last += f" — {escape(e.reason)}"
        blocks.append(context(last))
    blocks.append({"type": "divider"})
    return blocks
