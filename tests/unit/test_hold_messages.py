"""What people read of a hold: the parent message, `/rollout status`, the thread's lines
when it starts, changes and ends, App Home and the dashboard. Pure renderers, as data."""

from __future__ import annotations

from bot.config import parse_config
from bot.demo.terminal import render
from bot.domain.rollout import HOLD_START, Decision, Evaluate, RolloutStatus, State, decide
from bot.render import blocks
from bot.render import dashboard_page as dashboard
from bot.render.app_home import home_view
from bot.render.overview_model import build_overview
from tests.unit.test_dashboard import visible
from tests.unit.test_holds import (
    DOWN,
    ERRORS_DOWN,
    FAIL,
    GREEN,
    NO_DATA,
    SPEC,
    T0,
    S,
    gate,
    held,
    running,
)

HELD = running(held(("error_rate", DOWN, T0), ("p95", NO_DATA, T0 + 180 * S)))
HELD_TEXT = (
    "error_rate — Prometheus unreachable since 2026-11-02 14:02 UTC; "
    "p95 — no data since 2026-11-02 14:05 UTC"
)


def test_the_parent_and_status_say_which_gates_hold_it_and_since_when() -> None:
    parent = blocks.parent_message(SPEC, HELD)
    assert f"Held: {HELD_TEXT}" in render(parent)
    assert "<!date^1793628120^{date_short_pretty} {time}|2026-11-02 14:02 UTC>" in str(parent)
    assert render({"text": parent["text"]}) == f"phase-4: progressing at 5 %, held: {HELD_TEXT}"
    status = blocks.status_message([SPEC], {"phase-4": HELD})
    assert f"progressing at 5 %\n▰▱▱▱▱▱▱▱▱▱ 5 % · stage 1 of 3\nHeld: {HELD_TEXT}" in render(
        status
    )
    assert "Held" not in render(blocks.parent_message(SPEC, running()))
    assert "Held" not in render(blocks.status_message([SPEC], {"phase-4": running()}))


def test_the_thread_gets_one_line_when_a_hold_starts_changes_and_ends() -> None:
    start = decide(SPEC, running(), ERRORS_DOWN, Evaluate(), T0)
    assert isinstance(start, Decision)
    line = render(_reply(start))
    assert line == (
        "⏸️ phase-4 is held at 5 %: error_rate — Prometheus unreachable since 2026-11-02 "
        "14:02 UTC. It will not advance until the gate is measured again; on-call is paged "
        "if this lasts 30s."
    )
    paged = gate("error_rate", DOWN, T0, escalated=True)  # on-call was paged after 30s
    both = {"error_rate": paged, "p95": gate("p95", NO_DATA, T0 + 180 * S)}
    changed = decide(SPEC, start.status, both, Evaluate(), T0 + 180 * S)
    assert isinstance(changed, Decision)
    assert render(_reply(changed)) == f"⏸️ phase-4 is still held at 5 %: {HELD_TEXT}."
    ended = decide(SPEC, changed.status, GREEN, Evaluate(), T0 + 200 * S)
    assert isinstance(ended, Decision)
    assert render(_reply(ended)) == (
        "▶️ phase-4 is no longer held: error_rate, p95 are measured again. "
        "The soak counts green time from now."
    )
    red = {**GREEN, "error_rate": gate("error_rate", FAIL, T0 + 9 * S)}
    red_end = decide(SPEC, start.status, red, Evaluate(), T0 + 9 * S)
    assert isinstance(red_end, Decision)
    assert render(_reply(red_end)) == (
        "▶️ phase-4 is no longer held: error_rate is measured again. "
        "error_rate is red: it rolls back if it stays red for 5s."
    )


def _reply(decision: Decision) -> dict[str, object]:
    return blocks.change_message(
        SPEC, decision.change, decision.status, "rollout-bot", "automatic", gates=decision.gates
    )


CONFIG = parse_config(
    """
rollouts:
  - {name: phase-4, flag: phase_4, plan: safe, gates: [error_rate]}
gates:
  error_rate: {query: 'sum(rate(errors{flag="{flag}"}[1m]))', fail_above: 0.01}
"""
)


def test_app_home_and_the_dashboard_show_the_hold() -> None:
    held_status = RolloutStatus(State.PROGRESSING, 25, 2, T0, "", 4, HELD.held_by)
    events = {
        "phase-4": [
            {"at": T0, "actor": "rollout-bot", "source": "automatic", "verb": HOLD_START,
             "from_percent": 25, "to_percent": 25, "reason": "error_rate: Prometheus unreachable"},
        ]
    }  # fmt: skip
    now = T0 + 600 * S
    overview = build_overview(
        CONFIG.specs(), {"phase-4": held_status}, events, now, timezone="Europe/Paris"
    )
    home = render(home_view(overview, "U0CORA"))
    assert f"Held: {HELD_TEXT}" in home
    assert (
        "Last: rollout-bot held 25 % → 25 % 2026-11-02 14:02 UTC — "
        "error_rate: Prometheus unreachable"
    ) in home
    html = dashboard.page(overview)
    text = visible(html)
    assert (
        '<p class="hold"><strong>Held:</strong> error_rate — Prometheus unreachable since '
        '<time datetime="2026-11-02T14:02:00+00:00">15:02 CET</time>; p95 — no data since '
        '<time datetime="2026-11-02T14:05:00+00:00">15:05 CET</time></p>'
    ) in html
    assert "rollout-bot held at 25 % (automatic) — error_rate: Prometheus unreachable" in text
    quiet = build_overview(CONFIG.specs(), {"phase-4": running()}, {}, now)
    assert "Held" not in visible(dashboard.page(quiet))
    assert "Held" not in render(home_view(quiet, "U0CORA"))
