"""Block Kit for incidents: the thread message (edited in place), pages, reminders and
the "nobody answered" message. Pure functions of data."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.domain.durations import format_duration, format_elapsed
from bot.domain.escalation import ChainSnapshot, IncidentState, Level, TargetKind
from bot.render import buttons as actions
from bot.render.blocks import Block, button, context, escape, mention, section, slack_date

MAX_ALERTS_SHOWN = 10
PAGE_REF = "page:"  # page DMs are remembered as page:<incident>:<user>:<level>:<round>
_KIND_WORDS = {
    "automatic_rollback": "automatic rollback",
    "no_data": "a gate has had no data past its grace period",
    "source_down": "Prometheus is unreachable",
    "alert": "Alertmanager alert",
}


@dataclass(frozen=True)
class IncidentView:
    """What the incident's messages show."""

    id: int
    kind: str
    summary: str
    state: IncidentState
    opened_at: datetime
    rollout: str | None = None
    detail: str = ""
    severity: str = ""
    acked_by: str | None = None
    acked_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    silenced_until: datetime | None = None
    exhausted: bool = False
    alerts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source_url: str = ""

    @property
    def label(self) -> str:
        return f"#{self.id}"


def who(actor: str | None) -> str:
    if not actor:
        return "someone"
    if actor == "alertmanager":
        return "Alertmanager"
    return mention(actor)


def title(view: IncidentView) -> str:
    where = f" · *{escape(view.rollout)}*" if view.rollout else ""
    return f"Incident {view.label}{where} · {escape(_KIND_WORDS.get(view.kind, view.kind))}"


def summary(view: IncidentView) -> str:
    """The incident's summary (an alert's, from outside), as inert text."""
    return escape(view.summary)


def detail_lines(view: IncidentView) -> list[str]:
    """The detail (an alert's description, or the bot's own evidence) as inert text, and
    the link to where the alert came from: a link only for an http(s) address that Slack's
    link syntax cannot be broken out of."""
    lines = [escape(view.detail)] if view.detail else []
    if safe_link(view.source_url):
        lines.append(f"<{view.source_url}|Source>")
    return lines


def safe_link(url: str) -> bool:
    """Whether `url` can go in `<url|text>` as it is: http or https, and none of the
    characters that end or split Slack's link markup, nor blanks."""
    head, sep, rest = url.partition("://")
    if not sep or head.lower() not in ("http", "https") or not rest:
        return False
    return not any(c in "|<>" or c.isspace() or ord(c) < 32 for c in url)


def incident_message(view: IncidentView) -> dict[str, Any]:
    """The incident's message in the rollout's thread (or the channel), edited in place as
    the incident is acknowledged, silenced or resolved."""
    mark = {
        IncidentState.OPEN: "🚨",
        IncidentState.SILENCED: "🔕",
        IncidentState.ACKNOWLEDGED: "👀",
        IncidentState.RESOLVED: "✅",
    }[view.state]
    lines = [f"{mark} {title(view)}", summary(view), *detail_lines(view)]
    alert_lines = _alert_lines(view.alerts)
    if alert_lines:
        lines.append("\n".join(alert_lines))
    blocks: list[Block] = [section("\n".join(lines))]
    status = status_line(view)
    blocks.append(context(status))
    buttons = incident_buttons(view)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"incident:{view.id}", "elements": buttons})
    text = f"{mark} Incident {view.label}: {summary(view)} — {_plain(status)}"
    return {"text": text, "blocks": blocks}


def status_line(view: IncidentView) -> str:
    opened = f"Opened {slack_date(view.opened_at)}"
    if view.state is IncidentState.RESOLVED:
        line = f"Resolved by {who(view.resolved_by)}"
        if view.resolved_at is not None:
            line += f" {slack_date(view.resolved_at)}"
        if view.acked_by:
            line += f" · acknowledged by {who(view.acked_by)}"
        return f"{line} · {opened}"
    if view.state is IncidentState.ACKNOWLEDGED:
        line = f"Acknowledged by {who(view.acked_by)}"
        if view.acked_at is not None:
            line += f" {slack_date(view.acked_at)}"
        return f"{line}; escalation stopped · {opened}"
    if view.state is IncidentState.SILENCED and view.silenced_until is not None:
        return f"Silenced until {slack_date(view.silenced_until)} · {opened}"
    if view.exhausted:
        return f"Nobody answered the on-call chain · {opened}"
    return f"Paging the on-call chain until someone acknowledges · {opened}"


def incident_buttons(view: IncidentView) -> list[Block]:
    if view.state is IncidentState.RESOLVED:
        return []
    value = actions.IncidentButtonValue(view.id).encode()
    buttons: list[Block] = []
    if view.state is not IncidentState.ACKNOWLEDGED:
        buttons.append(button("Acknowledge", actions.INCIDENT_ACK, value, "primary"))
    buttons.append(button("Resolve", actions.INCIDENT_RESOLVE, value))
    if view.state is IncidentState.OPEN:
        buttons.append(button("Silence 1h", actions.INCIDENT_SILENCE, value))
    if view.state is IncidentState.SILENCED:
        buttons.append(button("Unsilence", actions.INCIDENT_UNSILENCE, value))
    return buttons


def page_ref(incident: int, user: str, level: int, round: int) -> str:
    """The name a page's direct message is remembered by, to edit it once answered."""
    return f"{PAGE_REF}{incident}:{user}:{level}:{round}"


def page_refs_of(incident: int, user: str | None = None) -> str:
    """The start of the page references of an incident (of one person's pages, with `user`)."""
    return f"{PAGE_REF}{incident}:" + (f"{user}:" if user is not None else "")


def parse_page_ref(ref: str) -> tuple[int, str, int, int] | None:
    """(incident, user, level, round) from `page_ref`; None for any other reference."""
    parts = ref.removeprefix(PAGE_REF).split(":") if ref.startswith(PAGE_REF) else []
    if len(parts) != 4 or not all(p.isdigit() for p in (parts[0], parts[2], parts[3])):
        return None
    return int(parts[0]), parts[1], int(parts[2]), int(parts[3])


def answered(view: IncidentView) -> bool:
    """Someone took it: acknowledged or resolved. Its pages then show who, not buttons."""
    return view.state in (IncidentState.ACKNOWLEDGED, IncidentState.RESOLVED)


def answered_line(view: IncidentView) -> str:
    """Who took the incident and when, as its message in the thread says it."""
    return status_line(view).rsplit(" · Opened ", 1)[0]


def page_dm(view: IncidentView, level: int, round: int, snapshot: ChainSnapshot) -> dict[str, Any]:
    """The direct message to the person paged. Once someone acknowledges or resolves the
    incident, the page is edited to this same function's answer: its buttons give way to who
    took it and when, as on the incident's message in the thread."""
    where = f" in *{escape(view.rollout)}*" if view.rollout else ""
    if answered(view):
        mark = "✅" if view.state is IncidentState.RESOLVED else "👀"
        lines = [f"{mark} You were paged for incident {view.label}{where}: {summary(view)}"]
        lines.extend(detail_lines(view))
        line = answered_line(view)
        return {
            "text": f"{mark} Incident {view.label}: {summary(view)} — {_plain(line)}",
            "blocks": [section("\n".join(lines)), context(line)],
        }
    lines = [
        f"🚨 You are on call for incident {view.label}{where}: {summary(view)}",
        _level_words(level, round, snapshot)
        + " Acknowledge to stop the escalation, or type "
        + f"`/rollout ack {view.id}`.",
    ]
    lines[1:1] = detail_lines(view)
    buttons = incident_buttons(view)
    blocks: list[Block] = [section("\n".join(lines))]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"page:{view.id}", "elements": buttons})
    return {"text": f"🚨 Incident {view.label}: {summary(view)}", "blocks": blocks}


def page_mention(
    view: IncidentView, target: Level, level: int, round: int, snapshot: ChainSnapshot
) -> dict[str, Any]:
    """The mention in the rollout's thread."""
    text = (
        f"{target.mention()} you are paged for incident {view.label}: {summary(view)}\n"
        + _level_words(level, round, snapshot)
        + f" Acknowledge with the button or `/rollout ack {view.id}`."
    )
    return {"text": text, "blocks": [section(text)]}


def nobody_answered(view: IncidentView, snapshot: ChainSnapshot) -> dict[str, Any]:
    rounds = "once" if snapshot.rounds == 1 else f"{snapshot.rounds} times"
    people = ", ".join(lv.mention() for lv in snapshot.levels)
    text = (
        f"<!channel> Nobody acknowledged incident {view.label}"
        + (f" in *{escape(view.rollout)}*" if view.rollout else "")
        + f": {summary(view)}\nThe on-call chain ({people}) was paged {rounds}. "
        f"Can anyone look? Type `/rollout ack {view.id}` to take it."
    )
    return {"text": text, "blocks": [section(text)]}


def resolved_by_data(view: IncidentView, gates: Sequence[str]) -> dict[str, Any]:
    """The thread's line when a no-data or source-down incident ends by itself."""
    names = ", ".join(f"*{escape(g)}*" for g in gates)
    verb = "is" if len(gates) == 1 else "are"
    text = (
        f"✅ {names} {verb} measured green again: incident {view.label} is resolved, "
        "and nobody is paged for it any more."
    )
    return {"text": text, "blocks": [section(text)]}


def silenced_in_alertmanager(
    view: IncidentView,
    user: str,
    silence_id: str,
    ends_at: datetime,
    labels: Mapping[str, str],
    reason: str,
) -> dict[str, Any]:
    """The thread's line when a silence of the incident's alert group is in Alertmanager."""
    matchers = ", ".join(f"`{name}=\"{value}\"`" for name, value in sorted(labels.items()))
    text = (
        f"🔕 {mention(user)} silenced incident {view.label} in Alertmanager until "
        f"{slack_date(ends_at)}: silence `{escape(silence_id)}` matches {escape(matchers)}."
    )
    if reason:
        text += f"\nReason: {escape(reason)}"
    return {"text": text, "blocks": [section(text)]}


def unsilenced_in_alertmanager(view: IncidentView, user: str, silence_id: str) -> dict[str, Any]:
    text = (
        f"🔔 {mention(user)} ended the silence of incident {view.label}: Alertmanager silence "
        f"`{escape(silence_id)}` is expired, so its alerts notify again."
    )
    return {"text": text, "blocks": [section(text)]}


def reminder(view: IncidentView, acked_at: datetime, now: datetime) -> dict[str, Any]:
    ago = format_elapsed(now - acked_at)
    when = "just now" if ago == "just now" else f"{ago} ago"
    text = (
        f"⏰ Incident {view.label} is still open: {summary(view)}\n"
        f"You acknowledged it {when}. Resolve it when it is over."
    )
    value = actions.IncidentButtonValue(view.id).encode()
    buttons = [button("Resolve", actions.INCIDENT_RESOLVE, value, "primary")]
    return {
        "text": text,
        "blocks": [
            section(text),
            {"type": "actions", "block_id": f"remind:{view.id}", "elements": buttons},
        ],
    }


def done_text(verb: str, view: IncidentView, silenced_for: str = "1h") -> str:
    """What the person who acknowledged, resolved, silenced or unsilenced an incident is told."""
    where = f"{escape(view.rollout)}: " if view.rollout else ""
    what = f"incident #{view.id} ({where}{summary(view)})"
    if verb == "acknowledge":
        return f"Acknowledged {what}. The escalation has stopped; the thread says so."
    if verb == "resolve":
        return f"Resolved {what}. The thread says so."
    if verb == "unsilence":
        return f"Ended the silence of {what}: the on-call chain is paged again from the top."
    return (
        f"Silenced {what} for {silenced_for}. The chain starts again after that unless "
        "someone acts."
    )


def open_incidents_text(views: Sequence[IncidentView]) -> str:
    listed = "\n".join(f"• `{v.id}` — {title(v)}: {summary(v)}" for v in views)
    return f"{len(views)} incidents are open:\n{listed}"


def _level_words(level: int, round: int, snapshot: ChainSnapshot) -> str:
    words = f"Level {level + 1} of {len(snapshot.levels)}"
    if snapshot.rounds > 1:
        words += f", round {round + 1} of {snapshot.rounds}"
    who_ = (
        "the group" if snapshot.levels and snapshot.levels[level].kind is TargetKind.GROUP else ""
    )
    return f"{words}{' (' + who_ + ')' if who_ else ''}: {_then(level, round, snapshot)}"


def _then(level: int, round: int, snapshot: ChainSnapshot) -> str:
    """What happens if nobody acknowledges the page at this level and round."""
    wait = snapshot.levels[level].wait if snapshot.levels else timedelta(0)
    last = level + 1 == len(snapshot.levels) and round + 1 == snapshot.rounds
    nxt = "the whole channel is told" if last else "the next level is paged"
    return f"if nobody acknowledges within {format_duration(wait)}, {nxt}."


def nobody_paged_message(
    incident_id: int,
    group: str,
    problem: str,
    level: int,
    round: int,
    snapshot: ChainSnapshot | None,
) -> dict[str, Any]:
    """A group page that reached nobody (an empty or unknown user group), for the thread."""
    then = (
        f" As for a page nobody answers: {_then(level, round, snapshot)}"
        if snapshot is not None and 0 <= level < len(snapshot.levels)
        else " The chain goes on as if the page went unanswered."
    )
    text = (
        f"⚠️ User group {_group(group)} {escape(problem)}: nobody was paged for incident "
        f"#{incident_id}.{then}"
    )
    return {"incident": incident_id, "text": text, "blocks": [section(text)]}


def _alert_lines(alerts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not alerts:
        return []
    firing = [a for a in alerts.values() if a.get("status") == "firing"]
    resolved = len(alerts) - len(firing)
    lines = [f"Alerts: {len(firing)} firing, {resolved} resolved"]
    for alert in sorted(firing, key=lambda a: str(a.get("name", "")))[:MAX_ALERTS_SHOWN]:
        line = f"• 🔥 *{escape(str(alert.get('name', '?')))}*"
        if alert.get("summary"):
            line += f" — {escape(str(alert['summary']))}"
        lines.append(line)
    if len(firing) > MAX_ALERTS_SHOWN:
        lines.append(f"• … and {len(firing) - MAX_ALERTS_SHOWN} more")
    return lines


def _group(group: str) -> str:
    """A user group by its mention when it is an ID, else as inert text."""
    return f"<!subteam^{group}>" if re.fullmatch(r"S[A-Z0-9]{1,30}", group) else escape(group)


def _plain(text: str) -> str:
    return text.replace("*", "")
