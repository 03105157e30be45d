"""A gate that turns unknown holds the rollout at once, as a change of state: `decide` says
so in one decision when the hold starts, changes or ends, and only then. Table by table,
with a fixed `now` and no database; tests/unit/test_hold_messages.py has what people read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.gates import GateHold, GateView, Outcome
from bot.domain.plans import Plan, Stage
from bot.domain.rollout import (
    HOLD_CHANGE,
    HOLD_END,
    HOLD_START,
    Advance,
    AdvanceMode,
    Announce,
    Decision,
    Evaluate,
    OpenIncident,
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

T0 = datetime(2026, 11, 2, 14, 2, tzinfo=UTC)
S = timedelta(seconds=1)
GRACE = 30 * S
PLAN = Plan("test", (Stage(5, 10 * S), Stage(25, 10 * S), Stage(100, 10 * S)))
SPEC = RolloutSpec("phase-4", "phase_4", PLAN, ("error_rate", "p95"), AdvanceMode.AUTO)
DOWN, NO_DATA, PASS, FAIL = Outcome.SOURCE_DOWN, Outcome.NO_DATA, Outcome.PASS, Outcome.FAIL


def gate(name: str, outcome: Outcome, since: datetime, escalated: bool = False) -> GateView:
    value = {PASS: 0.001, FAIL: 0.2}.get(outcome)
    return GateView(
        name, outcome, since, value, 0.01, 5 * S, f"q{{{name}}}", measured_at=since,
        grace=GRACE, escalated=escalated, interval=S,
    )  # fmt: skip


def running(held: tuple[GateHold, ...] = (), state: State = State.PROGRESSING) -> RolloutStatus:
    return RolloutStatus(state, 5, 0, T0 - 60 * S, "", 7, held)


def held(*holds: tuple[str, Outcome, datetime]) -> tuple[GateHold, ...]:
    return tuple(GateHold(*h) for h in holds)


GREEN = {"error_rate": gate("error_rate", PASS, T0 - 60 * S), "p95": gate("p95", PASS, T0 - 60 * S)}
ERRORS_DOWN = {**GREEN, "error_rate": gate("error_rate", DOWN, T0)}
BY_ERRORS = held(("error_rate", DOWN, T0))

# (status before, gates now, now, the verb decided (None: nothing to do), held by after)
CASES = [
    pytest.param(running(), ERRORS_DOWN, T0, HOLD_START, BY_ERRORS, id="unknown-holds-at-once"),
    pytest.param(
        running(BY_ERRORS), ERRORS_DOWN, T0 + 5 * S, None, BY_ERRORS, id="still-unknown-no-line"
    ),
    pytest.param(
        running(BY_ERRORS), {**GREEN, "error_rate": gate("error_rate", PASS, T0 + 9 * S)},
        T0 + 9 * S, HOLD_END, (), id="measured-again-ends-it",
    ),
    pytest.param(
        running(BY_ERRORS), {**ERRORS_DOWN, "p95": gate("p95", NO_DATA, T0 + 3 * S)}, T0 + 3 * S,
        HOLD_CHANGE, held(("error_rate", DOWN, T0), ("p95", NO_DATA, T0 + 3 * S)),
        id="another-gate-joins",
    ),
    pytest.param(
        running(BY_ERRORS), {**GREEN, "error_rate": gate("error_rate", NO_DATA, T0 + 4 * S)},
        T0 + 4 * S, HOLD_CHANGE, held(("error_rate", NO_DATA, T0 + 4 * S)),
        id="source-back-but-no-data",
    ),
    pytest.param(
        running(state=State.PAUSED), ERRORS_DOWN, T0, HOLD_START, BY_ERRORS, id="paused-too"
    ),
    pytest.param(
        running(BY_ERRORS), {"p95": GREEN["p95"]}, T0, HOLD_END, (), id="gate-no-longer-known"
    ),
]  # fmt: skip


@pytest.mark.parametrize(("before", "views", "now", "verb", "after"), CASES)
def test_a_hold_is_decided_when_the_unknown_gates_change_and_only_then(
    before: RolloutStatus,
    views: dict[str, GateView],
    now: datetime,
    verb: str | None,
    after: tuple[GateHold, ...],
) -> None:
    result = decide(SPEC, before, views, Evaluate(), now)
    if verb is None:
        assert isinstance(result, Refusal), result
        return
    assert isinstance(result, Decision), result
    assert result.change.verb == verb
    assert result.status == replace(before, held_by=after, version=before.version + 1)
    assert result.effects == (Announce(),)  # the thread and parent are told; nothing moves
    assert (result.change.from_percent, result.change.to_percent) == (5, 5)


def test_a_hold_never_advances_pages_after_the_grace_and_ends_once_measured() -> None:
    """Every tick for 55 seconds of a stage started at 14:02 with a 10s soak: the gate down
    from 14:02:02 to 14:02:40, green before and after."""
    status = replace(running(), stage_started_at=T0)
    views = {name: gate(name, PASS, T0) for name in SPEC.gates}
    said: list[tuple[int, str]] = []
    for second in range(56):
        now = T0 + second * S
        if second == 2:
            views["error_rate"] = gate("error_rate", DOWN, now)
        if second == 40:
            views["error_rate"] = gate("error_rate", PASS, now)
        views = {name: replace(v, measured_at=now) for name, v in views.items()}  # measured
        result = decide(SPEC, status, views, Evaluate(), now)
        if isinstance(result, Refusal):
            continue
        said.append((second, result.change.verb))
        if result.change.verb == "hold":  # the service marks the paged gate escalated
            views["error_rate"] = replace(views["error_rate"], escalated=True)
            pages = [e for e in result.effects if isinstance(e, OpenIncident)]
            assert [p.kind for p in pages] == ["source_down"]
            assert result.status.held_by == held(("error_rate", DOWN, T0 + 2 * S))
        if result.change.verb != "advance":
            assert result.status.percent == 5
            assert not [e for e in result.effects if isinstance(e, SetPercent)]
        status = result.status
    # One line when it starts, the page after the 30s grace, one line when it ends, and
    # the soak counted from the moment the gate was green again.
    assert said == [(2, HOLD_START), (32, "hold"), (40, HOLD_END), (50, "advance")]
    assert status.percent == 25 and status.held_by == ()


def test_a_sustained_red_gate_still_rolls_back_while_another_holds() -> None:
    views = {"error_rate": gate("error_rate", FAIL, T0), "p95": gate("p95", NO_DATA, T0)}
    status = running(held(("p95", NO_DATA, T0)))
    assert isinstance(decide(SPEC, status, views, Evaluate(), T0 + 4 * S), Refusal)
    result = decide(SPEC, status, views, Evaluate(), T0 + 5 * S)
    assert isinstance(result, Decision) and result.change.verb == "rollback"
    assert (result.status.state, result.status.percent) == (State.ROLLED_BACK, 0)
    assert result.status.held_by == ()
    assert SetPercent("phase_4", 0, ()) in result.effects


def test_a_green_soak_still_advances_once_the_hold_has_ended() -> None:
    fresh = {name: replace(v, measured_at=T0) for name, v in GREEN.items()}
    ended = decide(SPEC, running(BY_ERRORS), fresh, Evaluate(), T0)
    assert isinstance(ended, Decision) and ended.change.verb == HOLD_END
    advanced = decide(SPEC, ended.status, fresh, Evaluate(), T0)
    assert isinstance(advanced, Decision) and advanced.change.verb == "advance"
    assert (advanced.status.percent, advanced.status.held_by) == (25, ())


@pytest.mark.parametrize(
    ("command", "held_after"),
    [
        (Pause("lunch"), BY_ERRORS),
        (Advance(25, force=True, reason="hotfix"), BY_ERRORS),
        (Rollback(0), ()),
        (Advance(100, force=True, reason="x"), BY_ERRORS),
    ],
)
def test_other_decisions_keep_the_hold_while_traffic_is_exposed(
    command: Pause | Advance | Rollback, held_after: tuple[GateHold, ...]
) -> None:
    result = decide(SPEC, running(BY_ERRORS), ERRORS_DOWN, command, T0)
    assert isinstance(result, Decision)
    assert result.status.held_by == held_after


def test_completing_a_partial_rollback_resuming_and_starting_over() -> None:
    at_100 = replace(running(BY_ERRORS), percent=100, stage_index=2)
    done = decide(SPEC, at_100, ERRORS_DOWN, Advance(force=True, reason="x"), T0)
    assert isinstance(done, Decision) and done.status.state is State.COMPLETED
    assert done.status.held_by == ()
    at_25 = replace(running(BY_ERRORS), percent=25, stage_index=1)
    partial = decide(SPEC, at_25, ERRORS_DOWN, Rollback(5, "slow"), T0)
    assert isinstance(partial, Decision) and partial.status.held_by == BY_ERRORS
    resumed = decide(SPEC, partial.status, ERRORS_DOWN, Resume(), T0)
    assert isinstance(resumed, Decision) and resumed.status.held_by == BY_ERRORS
    again = decide(SPEC, RolloutStatus(State.ROLLED_BACK, 0, version=3), {}, Start(), T0)
    assert isinstance(again, Decision) and again.status.held_by == ()
