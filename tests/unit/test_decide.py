"""The rollout state machine, table by table, with a fixed `now` and no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.gates import GateView, Outcome
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import (
    Advance,
    AdvanceMode,
    Announce,
    Command,
    Decision,
    Evaluate,
    Pause,
    Refusal,
    Resume,
    Rollback,
    RolloutSpec,
    RolloutStatus,
    SetPercent,
    Start,
    State,
    decide,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SAFE = RolloutSpec("phase-4", "phase_4_deployment", BUILTIN_PLANS["safe"])
P, R, PAUSED, RB, C = (
    State.PROGRESSING,
    State.PENDING,
    State.PAUSED,
    State.ROLLED_BACK,
    State.COMPLETED,
)


def at(state: State, percent: int, version: int = 3) -> RolloutStatus:
    index = SAFE.plan.index_at_or_below(percent)
    return RolloutStatus(state, percent, index, NOW - timedelta(hours=30), "", version)


# (from, command, expected state, expected percent)
ALLOWED: list[tuple[RolloutStatus, Command, State, int]] = [
    (RolloutStatus(), Start(), P, 5),
    (at(RB, 0), Start(), P, 5),
    (at(C, 100), Start(), P, 5),
    (at(P, 5), Advance(), P, 10),
    (at(P, 10), Advance(25), P, 25),
    (at(P, 10), Advance(30), P, 30),  # off the plan: allowed, stage stays 25 %'s
    (at(P, 25), Advance(100), P, 100),
    (at(P, 100), Advance(), C, 100),  # next after the last stage completes it
    (at(P, 25), Pause("on-call away"), PAUSED, 25),
    (at(PAUSED, 25), Resume(), P, 25),
    (at(P, 25), Rollback(), RB, 0),
    (at(P, 25), Rollback(10, "error budget"), PAUSED, 10),
    (at(PAUSED, 25), Rollback(), RB, 0),
    (at(C, 100), Rollback(50), PAUSED, 50),
]


@pytest.mark.parametrize(("status", "command", "state", "percent"), ALLOWED)
def test_allowed_transitions(
    status: RolloutStatus, command: Command, state: State, percent: int
) -> None:
    result = decide(SAFE, status, {}, command, NOW)
    assert isinstance(result, Decision), result
    assert (result.status.state, result.status.percent) == (state, percent)
    assert result.status.version == status.version + 1
    assert result.change.from_percent == status.percent
    assert any(isinstance(e, Announce) for e in result.effects)


# (from, command, words the refusal must contain)
REFUSED: list[tuple[RolloutStatus, Command, str]] = [
    (at(P, 25), Start(), "already running"),
    (at(PAUSED, 25), Start(), "already running"),
    (at(P, 25), Advance(150), "above the current 25 and at most 100"),
    (at(P, 25), Advance(25), "above the current 25"),
    (at(P, 25), Advance(10), "above the current 25"),
    (at(PAUSED, 25), Advance(), "Resume it first"),
    (RolloutStatus(), Advance(), "Start it with"),
    (at(RB, 0), Advance(50), "Start it with"),
    (at(PAUSED, 25), Pause(), "already paused"),
    (RolloutStatus(), Pause(), "only a running rollout"),
    (at(P, 25), Resume(), "not paused"),
    (at(RB, 0), Resume(), "start"),
    (RolloutStatus(), Rollback(), "nothing to roll back"),
    (at(RB, 0), Rollback(), "nothing to roll back"),
    (at(P, 25), Rollback(25), "below the current 25"),
    (at(P, 25), Rollback(50), "below the current 25"),
]


@pytest.mark.parametrize(("status", "command", "words"), REFUSED)
def test_refusals_say_what_was_wrong_and_what_to_type(
    status: RolloutStatus, command: Command, words: str
) -> None:
    result = decide(SAFE, status, {}, command, NOW)
    assert isinstance(result, Refusal)
    assert words in result.problem + result.hint
    assert "/rollout" in result.hint


def test_start_begins_at_the_first_stage_and_opens_a_thread() -> None:
    result = decide(SAFE, RolloutStatus(), {}, Start(), NOW)
    assert isinstance(result, Decision)
    assert result.status == RolloutStatus(P, 5, 0, NOW, "", 1)
    assert SetPercent("phase_4_deployment", 5, ()) in result.effects
    assert Announce(new_thread=True) in result.effects


def test_advance_restarts_the_soak_and_moves_the_stage_cursor() -> None:
    result = decide(SAFE, at(P, 10), {}, Advance(50), NOW)
    assert isinstance(result, Decision)
    assert result.status.stage_index == 3
    assert result.status.stage_started_at == NOW


def test_rollback_to_a_lower_percent_holds_with_the_reason() -> None:
    result = decide(SAFE, at(P, 50), {}, Rollback(10, "latency"), NOW)
    assert isinstance(result, Decision)
    assert result.status.hold_reason == "rolled back from 50 %: latency"
    assert result.status.stage_index == 1
    assert Announce(broadcast=True) in result.effects
    assert SetPercent("phase_4_deployment", 10, ()) in result.effects


def test_pause_and_resume_do_not_change_the_percentage() -> None:
    paused = decide(SAFE, at(P, 25), {}, Pause("lunch"), NOW)
    assert isinstance(paused, Decision)
    assert not any(isinstance(e, SetPercent) for e in paused.effects)
    resumed = decide(SAFE, paused.status, {}, Resume(), NOW + timedelta(hours=1))
    assert isinstance(resumed, Decision)
    assert resumed.status.hold_reason == ""
    assert resumed.status.stage_started_at == NOW + timedelta(hours=1)


GATED = RolloutSpec("phase-4", "phase_4_deployment", BUILTIN_PLANS["safe"], ("error_rate",))


def view(outcome: Outcome, measured_ago: timedelta = timedelta(seconds=10)) -> GateView:
    return GateView(
        "error_rate", outcome, NOW - timedelta(hours=1), 0.02, 0.005, measured_at=NOW - measured_ago
    )


@pytest.mark.parametrize(
    ("observations", "words"),
    [
        ({}, "error_rate: not measured yet"),
        ({"error_rate": view(Outcome.FAIL)}, "error_rate: failing — 0.02 above 0.005"),
        ({"error_rate": view(Outcome.NO_DATA)}, "error_rate: no data"),
        ({"error_rate": view(Outcome.SOURCE_DOWN)}, "error_rate: metrics source down"),
    ],
)
def test_advance_is_refused_while_a_gate_is_red_or_unknown(
    observations: dict[str, GateView], words: str
) -> None:
    result = decide(GATED, at(P, 5), observations, Advance(), NOW)
    assert isinstance(result, Refusal)
    assert words in result.problem
    assert "force" in result.hint


def test_a_forced_advance_passes_red_gates_and_keeps_the_reason() -> None:
    result = decide(
        GATED, at(P, 5), {"error_rate": view(Outcome.FAIL)}, Advance(10, True, "known noise"), NOW
    )
    assert isinstance(result, Decision)
    assert result.change.forced and result.change.reason == "known noise"


def test_green_gates_let_an_advance_through() -> None:
    result = decide(GATED, at(P, 5), {"error_rate": view(Outcome.PASS)}, Advance(), NOW)
    assert isinstance(result, Decision)
    assert result.status.percent == 10


def test_a_green_measured_before_the_bot_was_down_does_not_count() -> None:
    stale = {"error_rate": view(Outcome.PASS, measured_ago=timedelta(minutes=20))}
    result = decide(GATED, at(P, 5), stale, Advance(), NOW)
    assert isinstance(result, Refusal)
    assert "error_rate: last measured 20m ago; waits for a fresh measurement" in result.problem
    soaked = at(P, 5)  # its day of soak is long over, but the last green is 20 minutes old
    auto = replace(GATED, advance=AdvanceMode.AUTO)
    result = decide(auto, soaked, stale, Evaluate(), NOW + timedelta(days=2))
    assert isinstance(result, Refusal)
    assert "gate error_rate was last measured 2d20m ago" in result.hint
