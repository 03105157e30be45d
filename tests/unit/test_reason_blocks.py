"""A reason someone typed reaches Slack as inert text in every message that shows it: no
`<!channel>`, `<!here>`, user-group or user mention, and no link, pings or opens anything.
The bot's own mentions and dates stay markup."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.demo.terminal import render
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import AdvanceMode, Change, RolloutSpec, RolloutStatus, State
from bot.render.app_home import home_view
from bot.render.blocks import (
    change_message,
    escape,
    history_message,
    parent_message,
    status_message,
)
from bot.render.overview_model import build_overview
from bot.render.summaries import ChangeLine, CheckpointView, checkpoint_message

NOW = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)
SPEC = RolloutSpec("phase-4", "phase_4_deployment", BUILTIN_PLANS["safe"], (), AdvanceMode.MANUAL)
TYPED = "<!channel> <!here> <!subteam^S123> <@U0BAD> <https://evil.example|click> R&D"
INERT = (
    "&lt;!channel&gt; &lt;!here&gt; &lt;!subteam^S123&gt; &lt;@U0BAD&gt; "
    "&lt;https://evil.example|click&gt; R&amp;D"
)
PAUSED = RolloutStatus(State.PAUSED, 25, 2, NOW, TYPED, 4)


def everything(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def assert_inert(message: dict[str, Any]) -> None:
    sent = everything(message)
    for markup in ("<!channel>", "<!here>", "<!subteam", "<@U0BAD>", "<https://evil"):
        assert markup not in sent
    assert INERT in sent
    assert "R&D" in render(message)  # what a reader sees: the reason as typed
    assert "<!channel> <!here>" in render(message)


def test_escape_is_slacks_three() -> None:
    assert escape(TYPED) == INERT
    assert escape("a &amp; b") == "a &amp;amp; b"  # typed as such, shown as such
    assert escape("no markup here") == "no markup here"


@pytest.mark.parametrize("forced", [False, True])
def test_a_change_in_the_thread(forced: bool) -> None:
    change = Change("pause", State.PROGRESSING, State.PAUSED, 25, 25, TYPED, forced)
    message = change_message(SPEC, change, PAUSED, "U0FORGE", "slash")
    assert_inert(message)
    assert message["text"].startswith("<@U0FORGE> paused phase-4")  # the bot's own mention
    assert ("Forced: " if forced else "Reason: ") + INERT in message["text"]


def test_the_thread_parent_and_status() -> None:
    assert_inert(parent_message(SPEC, PAUSED))
    assert f"Held: {INERT}" in everything(parent_message(SPEC, PAUSED))
    assert_inert(status_message([SPEC], {"phase-4": PAUSED}))


def test_history() -> None:
    events = [
        {
            "at": NOW,
            "actor": "U0FORGE",
            "source": "slash",
            "verb": "pause",
            "from_percent": 25,
            "to_percent": 25,
            "reason": TYPED,
        }
    ]
    message = history_message("phase-4", events)
    assert_inert(message)
    assert "<@U0FORGE> paused" in message["text"]
    assert "<!date^" in message["text"]  # the bot's own date markup stays


def test_a_checkpoint() -> None:
    changes = (ChangeLine(NOW - timedelta(hours=1), "U0FORGE", "pause", 25, 25, TYPED),)
    message = checkpoint_message(CheckpointView(SPEC, PAUSED, NOW, changes=changes))
    assert_inert(message)
    assert "<@U0FORGE> pause" in everything(message)


def test_the_home_tab() -> None:
    events = {
        "phase-4": [
            {
                "at": NOW,
                "actor": "U0FORGE",
                "source": "slash",
                "verb": "pause",
                "from_percent": 25,
                "to_percent": 25,
                "reason": TYPED,
            }
        ]
    }
    overview = build_overview({"phase-4": SPEC}, {"phase-4": PAUSED}, events, NOW)
    view = home_view(overview, "U0CORA")
    assert_inert(view)
    assert "<@U0FORGE> paused" in everything(view)
