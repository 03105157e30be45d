"""The rollout state machine, table by table, with a fixed `now` and no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.gates import GateView, Outcome
from bot.domain.plans import BUILTIN_PLANS, Plan, Stage
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


def at(
    state: State, percent: int, version: int = 3, soaked: timedelta = timedelta(hours=30)
) -> RolloutStatus:
    """A status `soaked` into its stage: by default past every soak but the 48 h at 100 %."""
    index = SAFE.plan.index_at_or_below(percent)
    return RolloutStatus(state, percent, index, NOW - soaked, "", version)


FORCED = {"force": True, "reason": "incident 42 needs it"}


# (from, command, expected state, expected percent)
ALLOWED: list[tuple[RolloutStatus, Command, State, int]] = [
    (RolloutStatus(), Start(), P, 5),
    (at(RB, 0), Start(), P, 5),
    (at(C, 100), Start(), P, 5),
    (at(P, 5), Advance(), P, 10),
    (at(P, 10), Advance(25), P, 25),
    (at(P, 10), Advance(20), P, 20),  # off the plan, short of its next stage: allowed
    (at(P, 10), Advance(30, **FORCED), P, 30),  # past it: forced; the stage stays 25 %'s
    (at(P, 25), Advance(100, **FORCED), P, 100),
    (at(P, 100, soaked=timedelta(hours=48)), Advance(), C, 100),  # next after the last stage
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
    result = decide(SAFE, at(P, 10), {}, Advance(50, **FORCED), NOW)
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


def view(
    outcome: Outcome,
    measured_ago: timedelta = timedelta(seconds=10),
    since: timedelta = timedelta(hours=30),
) -> GateView:
    return GateView(
        "error_rate", outcome, NOW - since, 0.02, 0.005, measured_at=NOW - measured_ago
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


# --- the soak guard: a person advances a stage at a time, after its soak --------------------


def soaked_for(percent: int, soaked: timedelta) -> RolloutStatus:
    return at(P, percent, soaked=soaked)


def test_advancing_before_the_soak_ends_says_how_long_is_left_and_what_to_type() -> None:
    result = decide(SAFE, soaked_for(5, timedelta(hours=2, minutes=10)), {}, Advance(), NOW)
    assert result == Refusal(
        "phase-4 has soaked 2h 10m of its 1d at 5 %: 21h 50m left.",
        "Wait, or type `/rollout advance next phase-4 force <reason>`.",
    )


def test_advancing_past_the_next_stage_is_refused_even_after_the_soak() -> None:
    result = decide(SAFE, soaked_for(5, timedelta(days=2)), {}, Advance(60), NOW)
    assert result == Refusal(
        "The plan's next stage is 10 %: 60 % would skip 10, 25 and 50 %.",
        "Type `/rollout advance next phase-4` for 10 %, or "
        "`/rollout advance 60 phase-4 force <reason>`.",
    )


def test_five_to_sixty_right_after_the_start_names_both_and_moves_nothing() -> None:
    started = decide(SAFE, RolloutStatus(), {}, Start(), NOW - timedelta(minutes=5))
    assert isinstance(started, Decision)
    result = decide(SAFE, started.status, {}, Advance(60), NOW)
    assert isinstance(result, Refusal)
    assert result.problem == (
        "phase-4 has soaked 5m of its 1d at 5 %: 23h 55m left. "
        "The plan's next stage is 10 %: 60 % would skip 10, 25 and 50 %."
    )
    assert result.hint == (
        "Type `/rollout advance next phase-4` for 10 % once it has soaked, or "
        "`/rollout advance 60 phase-4 force <reason>`."
    )


def test_a_forced_advance_skips_the_soak_and_stages_and_keeps_the_reason() -> None:
    result = decide(SAFE, soaked_for(5, timedelta(minutes=5)), {}, Advance(60, **FORCED), NOW)
    assert isinstance(result, Decision)
    assert (result.status.percent, result.status.stage_index) == (60, 3)
    assert result.change.forced and result.change.reason == "incident 42 needs it"


@pytest.mark.parametrize("target", [None, 10, 7])
def test_once_soaked_a_stage_at_a_time_needs_no_force(target: int | None) -> None:
    result = decide(SAFE, soaked_for(5, timedelta(days=1)), {}, Advance(target), NOW)
    assert isinstance(result, Decision), result
    assert result.status.percent == (target or 10)


def test_completing_before_the_watch_at_100_ends_needs_force_too() -> None:
    status = soaked_for(100, timedelta(hours=1))
    refused = decide(SAFE, status, {}, Advance(), NOW)
    assert refused == Refusal(
        "phase-4 has soaked 1h of its 2d at 100 %: 1d 23h left.",
        "Wait, or type `/rollout advance next phase-4 force <reason>`.",
    )
    forced = decide(SAFE, status, {}, Advance(**FORCED), NOW)
    assert isinstance(forced, Decision)
    assert forced.status.state is C
    assert forced.change.forced and forced.change.reason == "incident 42 needs it"


def test_the_soak_counts_from_the_resume_not_from_the_advance() -> None:
    paused = decide(SAFE, soaked_for(10, timedelta(hours=23)), {}, Pause("lunch"), NOW)
    assert isinstance(paused, Decision)
    later = NOW + timedelta(hours=2)
    resumed = decide(SAFE, paused.status, {}, Resume(), later)
    assert isinstance(resumed, Decision)
    result = decide(SAFE, resumed.status, {}, Advance(), later + timedelta(seconds=30))
    assert isinstance(result, Refusal)
    assert result.problem == "phase-4 has soaked 30s of its 1d at 10 %: 1d left."  # rounded up


def test_a_custom_soak_shorter_than_an_hour_is_all_the_guard_waits_for() -> None:
    quick = Plan("quick", (Stage(5, timedelta(minutes=20)), Stage(50, timedelta(minutes=20))))
    spec = RolloutSpec("phase-4", "phase_4_deployment", quick)
    status = RolloutStatus(P, 5, 0, NOW - timedelta(minutes=19, seconds=30))
    refused = decide(spec, status, {}, Advance(), NOW)
    assert isinstance(refused, Refusal)
    assert refused.problem == "phase-4 has soaked 19m of its 20m at 5 %: 30s left."
    assert isinstance(decide(spec, status, {}, Advance(), NOW + timedelta(seconds=30)), Decision)


def test_an_unfinished_soak_and_a_red_gate_are_both_named() -> None:
    status = soaked_for(5, timedelta(hours=2))
    result = decide(GATED, status, {"error_rate": view(Outcome.FAIL)}, Advance(), NOW)
    assert isinstance(result, Refusal)
    assert result.problem.startswith(
        "phase-4 has soaked 2h of its 1d at 5 %: 22h left.\n"
        "phase-4 cannot advance while a gate is not green:\n• error_rate: failing"
    )
    assert result.hint == (
        "Wait for the soak and the gates, or type `/rollout advance next phase-4 force <reason>`."
    )


def test_a_manual_advance_counts_green_time_as_the_automatic_one_does() -> None:
    """The stage started 30 h ago, but its gate turned green only an hour ago: the 1 d soak
    has 23 h left, for a person as for the bot."""
    green_an_hour = {"error_rate": view(Outcome.PASS, since=timedelta(hours=1))}
    result = decide(GATED, at(P, 5), green_an_hour, Advance(), NOW)
    assert isinstance(result, Refusal)
    assert result.problem.startswith("phase-4 has soaked 1h of its 1d at 5 %: 23h left.")
