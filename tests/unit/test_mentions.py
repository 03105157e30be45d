"""Every place the bot shows a person in Slack names them with a mention (`<@U…>`, which
Slack draws as their name), never as a raw ID such as "@UOPS" or "UOPS"."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain import escalation as esc
from bot.domain.escalation import ChainSnapshot, IncidentState, Level, TargetKind
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import AdvanceMode, Change, Refusal, RolloutSpec, RolloutStatus, State
from bot.render import app_home as home
from bot.render import blocks, incident_blocks
from bot.render.incident_blocks import IncidentView
from bot.render.overview_model import IncidentView as HomeIncident
from bot.render.overview_model import build_overview
from bot.render.summaries import ChangeLine, CheckpointView, IncidentLine, checkpoint_message

NOW = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)
PERSON = "UOPS"
SPEC = RolloutSpec("phase-4", "phase_4", BUILTIN_PLANS["safe"], (), AdvanceMode.MANUAL)
AT_10 = RolloutStatus(State.PROGRESSING, 10, 1, NOW - timedelta(hours=1), "", 3)
CHAIN = ChainSnapshot((Level(TargetKind.USER, PERSON, timedelta(minutes=5)),), 1)
INCIDENT = IncidentView(
    1, "automatic_rollback", "rolled back", IncidentState.ACKNOWLEDGED, NOW, "phase-4",
    acked_by=PERSON, acked_at=NOW,
)
RESOLVED = IncidentView(
    1, "automatic_rollback", "rolled back", IncidentState.RESOLVED, NOW, "phase-4",
    acked_by=PERSON, acked_at=NOW, resolved_by=PERSON, resolved_at=NOW,
)
EVENT = {
    "at": NOW, "actor": PERSON, "source": "slash", "verb": "pause", "from_percent": 10,
    "to_percent": 10, "reason": "", "forced": False, "version": 3,
}


def _refused(result: esc.Transition | esc.Refused) -> str:
    assert isinstance(result, esc.Refused)
    return result.reason


ACKED = esc.Escalation(IncidentState.ACKNOWLEDGED, acked_by=PERSON, acked_at=NOW)
SHOWN: dict[str, Any] = {
    "change in the thread": blocks.change_message(
        SPEC, Change("pause", State.PROGRESSING, State.PAUSED, 10, 10), AT_10, PERSON, "button"
    ),
    "history": blocks.history_message("phase-4", [EVENT]),
    "checkpoint": checkpoint_message(CheckpointView(
        SPEC, AT_10, NOW, incidents=[IncidentLine("INC-1", "rolled back", PERSON)],
        changes=[ChangeLine(NOW, PERSON, "pause", 10, 10),
                 ChangeLine(NOW, PERSON, "acknowledged", incident="INC-1")],
    )),
    "incident message, acknowledged": incident_blocks.incident_message(INCIDENT),
    "incident message, resolved": incident_blocks.incident_message(RESOLVED),
    "page, answered": incident_blocks.page_dm(INCIDENT, 0, 0, CHAIN),
    "page in the thread": incident_blocks.page_mention(INCIDENT, CHAIN.levels[0], 0, 0, CHAIN),
    "nobody answered": incident_blocks.nobody_answered(INCIDENT, CHAIN),
    "already acknowledged": _refused(esc.acknowledge(CHAIN, ACKED, "U0OTHER", NOW)),
    "not yours to silence": _refused(esc.silence(ACKED, "U0OTHER", NOW)),
    "who may": blocks.refusal_text(Refusal("You may not pause phase-4.", who=(PERSON,))),
    "App Home": home.home_view(
        build_overview(
            {"phase-4": SPEC}, {"phase-4": AT_10}, {"phase-4": [EVENT]}, NOW,
            incidents=[HomeIncident("#1", "rolled back", PERSON, "phase-4", number=1)],
        ),
        "U0CORA",
    ),
}


@pytest.mark.parametrize("where", list(SHOWN))
def test_a_person_is_shown_by_a_mention(where: str) -> None:
    said = SHOWN[where] if isinstance(SHOWN[where], str) else json.dumps(SHOWN[where])
    assert f"<@{PERSON}>" in said, said
    bare = re.findall(rf"(?<!<@){PERSON}", said)
    assert not bare, f"{where} shows the raw ID {PERSON!r}: {said}"
