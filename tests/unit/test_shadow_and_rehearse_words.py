"""Shadow runs in `decide` and the flags document, and the words of `/rollout rehearse`
and `start NAME shadow`: pure, table-style."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.exposure import flags_document
from bot.domain.gates import GateView, Outcome
from bot.domain.plans import Plan, Stage
from bot.domain.rollout import (
    AdvanceMode,
    Decision,
    Evaluate,
    OpenIncident,
    RolloutSpec,
    RolloutStatus,
    SetPercent,
    Start,
    State,
    decide,
)
from bot.errors import ParseError
from bot.render.rehearsal_blocks import RehearsalValue
from commands.parse import parse

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
PLAN = Plan("quick", (Stage(5, H), Stage(25, H), Stage(100, H)))


def spec(advance: AdvanceMode = AdvanceMode.MANUAL, page: bool = False) -> RolloutSpec:
    return RolloutSpec("checkout", "new_checkout", PLAN, ("errors",), advance, page_in_shadow=page)


def view(outcome: Outcome, since: datetime, at: datetime, value: float = 0.001) -> GateView:
    return GateView(
        "errors", outcome, since, value, 0.01, timedelta(minutes=2), measured_at=at
    )


def started(s: RolloutSpec, shadow: bool) -> RolloutStatus:
    result = decide(s, RolloutStatus(), {}, Start(shadow=shadow), T0)
    assert isinstance(result, Decision)
    return result.status


def test_a_shadow_start_delivers_what_was_delivered_and_advances_by_itself() -> None:
    status = started(spec(), shadow=True)
    assert (status.percent, status.shadow, status.delivered) == (5, 0, 0)
    now = T0 + H
    green = {"errors": view(Outcome.PASS, T0, now)}
    result = decide(spec(), status, green, Evaluate(), now)
    assert isinstance(result, Decision) and result.change.verb == "advance"
    assert (result.status.percent, result.status.delivered) == (25, 0)
    assert not any(isinstance(e, SetPercent) for e in result.effects)


def test_a_live_manual_start_waits_for_a_person_after_the_soak() -> None:
    status = started(spec(), shadow=False)
    now = T0 + H
    result = decide(spec(), status, {"errors": view(Outcome.PASS, T0, now)}, Evaluate(), now)
    assert not isinstance(result, Decision)


@pytest.mark.parametrize("page", [False, True])
def test_a_shadow_rollback_pages_only_when_the_config_says(page: bool) -> None:
    s = spec(AdvanceMode.SHADOW, page)
    status = started(s, shadow=False)  # advance: shadow makes every run a shadow run
    assert status.shadow == 0
    now = T0 + timedelta(minutes=5)
    red = {"errors": view(Outcome.FAIL, T0, now, value=0.2)}
    result = decide(s, status, red, Evaluate(), now)
    assert isinstance(result, Decision) and result.status.state is State.ROLLED_BACK
    assert result.status.shadow == 0
    assert any(isinstance(e, OpenIncident) for e in result.effects) is page


def test_the_flags_document_gives_a_shadow_run_the_delivered_percent() -> None:
    s = spec()
    status = RolloutStatus(State.PROGRESSING, 25, 1, T0, shadow=0, version=3)
    entry = flags_document({"checkout": s}, {"checkout": status}, T0)["flags"]["new_checkout"]
    assert (entry["rollout_percentage"], entry["enabled"], entry["shadow"]) == (0, False, True)


def test_start_shadow_and_rehearse_parse() -> None:
    names = ["checkout", "search"]
    start = parse("start checkout shadow", names)
    assert start.name == "checkout" and start.command == Start(shadow=True)
    assert parse("start checkout", names).command == Start()
    asked = parse("rehearse checkout over 3d plan fast from 2026-11-20T08:00", names)
    assert asked.name == "checkout" and asked.rehearse is not None
    assert asked.rehearse.over == timedelta(days=3) and asked.rehearse.plan == "fast"
    assert asked.rehearse.start == datetime(2026, 11, 20, 8, 0)
    bare = parse("rehearse", names)
    assert bare.name is None and bare.rehearse is not None
    assert bare.rehearse.over == timedelta(days=7)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rehearse checkout over", "`over` needs a value"),
        ("rehearse checkout over 2d over 3d", "`over` is given twice"),
        ("rehearse checkout from yesterday", "is not a date"),
        ("rehearse checkout soon", "is not part of a rehearsal"),
        ("rehearse checkuot", "did you mean `checkout`"),
    ],
)
def test_a_wrong_rehearse_says_what_to_type(text: str, says: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(text, ["checkout"])
    assert says in f"{caught.value.problem} {caught.value.hint}"


def test_the_post_in_thread_button_value_round_trips_and_refuses_others() -> None:
    value = RehearsalValue("checkout", "safe", T0, T0 + 7 * 24 * H)
    assert RehearsalValue.decode(value.encode()) == value
    for bad in ("", "{}", '{"r":"x","p":"safe","s":"1","e":2}', "[1]", '{"r":1}'):
        with pytest.raises(ValueError):
            RehearsalValue.decode(bad)
