"""One rule for when a stage has soaked: `decide`, a checkpoint, App Home and the dashboard
say the same moment, also when a gate turned green after the stage began."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.domain.gates import GateView, Outcome
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import (
    AdvanceMode,
    Evaluate,
    Refusal,
    RolloutSpec,
    RolloutStatus,
    State,
    decide,
    soak_ends_at,
)
from bot.render import app_home, dashboard_page
from bot.render.blocks import slack_date
from bot.render.overview_model import build_overview
from bot.render.summaries import CheckpointView, checkpoint_message

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
STAGE_START = NOW - timedelta(hours=20)  # 20 h into a 24 h soak at 10 %
GREEN_SINCE = NOW - timedelta(hours=6)  # the gate was red until six hours ago
SPEC = RolloutSpec(
    "phase-4", "phase_4", BUILTIN_PLANS["safe"], ("error_rate",), AdvanceMode.AUTO
)
STATUS = RolloutStatus(State.PROGRESSING, 10, 1, STAGE_START, "", 4)


def green(measured_at: datetime) -> dict[str, GateView]:
    """The gate, green since GREEN_SINCE, as last measured at `measured_at`."""
    view = GateView("error_rate", Outcome.PASS, GREEN_SINCE, 0.001, 0.005, measured_at=measured_at)
    return {"error_rate": view}


GATES = green(NOW)


def test_every_surface_says_when_the_soak_ends_as_decide_judges_it() -> None:
    ends = soak_ends_at(SPEC, STATUS, GATES)
    assert ends == GREEN_SINCE + timedelta(days=1)  # not STAGE_START + 1 d
    # decide: at the stage's naive end (4 h from now) it still waits: 14 h of green left.
    naive_end = STAGE_START + timedelta(days=1)
    waits = decide(SPEC, STATUS, green(naive_end), Evaluate(), naive_end)
    assert isinstance(waits, Refusal) and waits.hint == "14h of green soak left"
    advanced = decide(SPEC, STATUS, green(ends), Evaluate(), ends)
    assert not isinstance(advanced, Refusal) and advanced.status.percent == 25

    checkpoint = json.dumps(
        checkpoint_message(CheckpointView(SPEC, STATUS, NOW, soak_ends=ends)), ensure_ascii=False
    )
    assert f"Soaks until {slack_date(ends)}" in checkpoint
    overview = build_overview(
        {"phase-4": SPEC}, {"phase-4": STATUS}, {}, NOW, observations={"phase-4": GATES}
    )
    assert overview.rollouts[0].soak_ends_at == ends
    home = json.dumps(app_home.home_view(overview, "U0CORA"), ensure_ascii=False)
    assert f"Soaks until {slack_date(ends)}" in home
    page = dashboard_page.page(overview)
    assert f'<time datetime="{ends.isoformat()}">' in page
    assert f'<time datetime="{naive_end.isoformat()}">' not in page
