"""Every renderer that shows text from outside the bot (alert labels and annotations,
reasons, names from the config, words people typed) leaves no `<` of it unescaped: such
text can neither ping (`<!channel>`, `<@U…>`) nor draw a disguised link (`<https://…|x>`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.escalation import IncidentState
from bot.domain.gates import GateHold, GateView, Outcome
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import AdvanceMode, Change, Refusal, RolloutSpec, RolloutStatus, State
from bot.render import blocks, incident_blocks
from bot.render.incident_blocks import IncidentView
from bot.render.summaries import (
    ChangeLine,
    CheckpointView,
    GateLine,
    IncidentLine,
    checkpoint_message,
    daily_summary_message,
)

NOW = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)
# The markup the bot itself writes: dates, its mentions of user IDs and groups, its links
# to Prometheus. Any other `<` came from outside text left unescaped; the mentions typed from
# outside below (U0EVIL, S1) are never the bot's own.
OWN_MARKUP = re.compile(
    r"<!date\^\d+\^[^|<>]*\|[^<>]*>|<@U(?!0EVIL>)[A-Z0-9]+>|<!subteam\^S(?!1>)[A-Z0-9]+>"
    r"|<http://prom\.example/graph\?[^|<>]*\|Open the query in Prometheus>"
)
outside = st.text(min_size=1, max_size=80) | st.sampled_from(
    ["<!channel>", "<!here> x", "<@U0EVIL>", "<https://evil.example|runbook>", "<!subteam^S1>"]
)


def texts(value: Any) -> list[str]:
    """What Slack shows of a message: every `text` (not ids or values it carries back)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [
            t for k, v in value.items() if k in ("text", "blocks", "elements", "accessory")
            or not isinstance(v, str) for t in texts(v)
        ]
    if isinstance(value, list | tuple):
        return [t for v in value for t in texts(v)]
    return []


def assert_inert(message: Any) -> None:
    for text in texts(message):
        assert "<" not in OWN_MARKUP.sub("", text), text


def spec(name: str, gate: str = "error_rate") -> RolloutSpec:
    return RolloutSpec(name, name, BUILTIN_PLANS["safe"], (gate,), AdvanceMode.MANUAL)


@settings(max_examples=60, deadline=None)
@given(name=outside, reason=outside, gate=outside, detail=outside, query=outside)
def test_rollout_messages(name: str, reason: str, gate: str, detail: str, query: str) -> None:
    s = spec(name, gate)
    hold = GateHold(gate, Outcome.NO_DATA, NOW)
    status = RolloutStatus(State.PAUSED, 10, 1, NOW, reason, 3, held_by=(hold,))
    view = GateView(gate, Outcome.FAIL, NOW, None, 0.01, timedelta(minutes=5), query, detail)
    unknown = GateView(gate, Outcome.NO_DATA, NOW, None, None, timedelta(minutes=5), query, detail)
    assert_inert(blocks.parent_message(s, status))
    assert_inert(blocks.status_message([s], {name: status}, now=NOW))
    change = Change("pause", State.PROGRESSING, State.PAUSED, 10, 10, reason)
    assert_inert(blocks.change_message(s, change, status, "U0CORA", "slash"))
    assert_inert(blocks.change_message(
        s, change, status, reason, "button", gates=[view, unknown],
        prometheus_url="http://prom.example",
    ))
    for verb in ("hold_start", "hold_end", "wait"):
        c = Change(verb, State.PROGRESSING, State.PROGRESSING, 10, 10, reason)
        assert_inert(blocks.change_message(s, c, status, "U0CORA", "automatic", gates=[view]))
    assert_inert(blocks.refusal_text(Refusal(reason, detail, ("U0CORA", "S0OPS"))))
    event = {"at": NOW, "actor": reason, "source": detail, "verb": "pause",
             "from_percent": 10, "to_percent": 10, "reason": reason, "policy": {"window": detail}}
    assert_inert(blocks.history_message(name, [event]))
    assert_inert(blocks.unknown_rollout_click_text(name))


@settings(max_examples=60, deadline=None)
@given(name=outside, summary=outside, detail=outside, alert=outside, url=outside)
def test_incident_messages(name: str, summary: str, detail: str, alert: str, url: str) -> None:
    view = IncidentView(
        7, "alert", summary, IncidentState.OPEN, NOW, name, detail=detail, source_url=url,
        alerts={"f1": {"status": "firing", "name": alert, "summary": summary}},
    )
    assert_inert(incident_blocks.incident_message(view))
    for verb in ("acknowledge", "resolve", "silence"):
        assert_inert(incident_blocks.done_text(verb, view))
    assert_inert(incident_blocks.open_incidents_text([view]))
    assert_inert(incident_blocks.reminder(view, NOW, NOW))
    assert_inert(incident_blocks.resolved_by_data(view, [alert]))
    assert_inert(incident_blocks.nobody_paged_message(7, alert, detail, 0, 0, None))


@settings(max_examples=60, deadline=None)
@given(name=outside, summary=outside, reason=outside, detail=outside)
def test_checkpoints_and_daily_summary(name: str, summary: str, reason: str, detail: str) -> None:
    status = RolloutStatus(State.PAUSED, 10, 1, NOW - timedelta(hours=1), reason, 3)
    view = CheckpointView(
        spec(name, detail), status, NOW,
        gates=[GateLine(detail, Outcome.NO_DATA, None, 0.01, detail=detail)],
        incidents=[IncidentLine(summary, summary, "U0CORA")],
        changes=[ChangeLine(NOW, reason, "pause", 10, 10, reason),
                 ChangeLine(NOW, "U0CORA", "acknowledged", incident=summary)],
        missing=[detail],
    )
    assert_inert(checkpoint_message(view))
    assert_inert(daily_summary_message([view], NOW))


def test_the_link_to_an_alerts_source_is_drawn_only_for_a_plain_http_address() -> None:
    def source(url: str) -> str:
        view = IncidentView(1, "alert", "s", IncidentState.OPEN, NOW, source_url=url)
        return str(incident_blocks.incident_message(view)["blocks"][0]["text"]["text"])

    assert "<https://prom.example/graph?g0.expr=up|Source>" in source(
        "https://prom.example/graph?g0.expr=up"
    )
    for bad in ("javascript:alert(1)", "https://a|<!channel>", "https://a>x", "ftp://a", "x"):
        assert "Source" not in source(bad), bad
