"""The control loop's pure core: assessing gates, and `decide(..., Evaluate(), now)`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.assess import (
    GateRule,
    Measurement,
    OnNoData,
    assess,
    due_gates,
    history_holds,
    next_view,
)
from bot.domain.gates import GateHold, GateView, Outcome
from bot.domain.plans import Plan, Stage, Tier
from bot.domain.rollout import (
    Advance,
    AdvanceMode,
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

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
PLAN = Plan("test", (Stage(5, 10 * S), Stage(25, 10 * S), Stage(100, 10 * S)))
ERRORS = GateRule(
    "error_rate",
    'sum(rate(http_requests_total{flag="{flag}",code="500"}[5s]))',
    fail_above={Tier.CANARY: 0.005, Tier.PROGRESSIVE: 0.01, Tier.FINAL: 0.01},
    window={t: 5 * S for t in Tier},
    interval=S,
    no_data_grace=30 * S,
)
LATENCY = GateRule(
    "p95", "p95{flag}", fail_above={t: 0.25 for t in Tier}, window={t: 5 * S for t in Tier},
    interval=S,
)  # fmt: skip
RULES = {r.name: r for r in (ERRORS, LATENCY)}


def spec(advance: AdvanceMode = AdvanceMode.AUTO) -> RolloutSpec:
    return RolloutSpec("phase-4", "phase_4", PLAN, ("error_rate", "p95"), advance)


def view(rule: GateRule, outcome: Outcome, since: datetime, value: float | None = 0.0) -> GateView:
    return GateView(
        rule.name, outcome, since, value, 0.005, rule.window_at(Tier.CANARY), rule.query,
        measured_at=since, grace=rule.no_data_grace,
    )  # fmt: skip


def running(percent: int = 5, started: datetime = T0) -> RolloutStatus:
    index = PLAN.index_at_or_below(percent)
    return RolloutStatus(State.PROGRESSING, percent, index, started, version=1)


# --- assess ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "on_no_data", "expected"),
    [
        (Measurement((0.001,)), OnNoData.HOLD, Outcome.PASS),
        (Measurement((0.001, 0.02)), OnNoData.HOLD, Outcome.FAIL),  # the worst series counts
        (Measurement(()), OnNoData.HOLD, Outcome.NO_DATA),
        (Measurement((float("nan"),)), OnNoData.HOLD, Outcome.NO_DATA),
        (Measurement.down("connection refused"), OnNoData.HOLD, Outcome.SOURCE_DOWN),
        (Measurement(()), OnNoData.FAIL, Outcome.FAIL),
        (Measurement.down("timeout"), OnNoData.FAIL, Outcome.FAIL),
        (Measurement(()), OnNoData.PASS, Outcome.PASS),
        (Measurement.down("timeout"), OnNoData.PASS, Outcome.SOURCE_DOWN),  # never green
    ],
)
def test_assess_outcomes(measurement: Measurement, on_no_data: OnNoData, expected: Outcome) -> None:
    rule = GateRule("g", "q", fail_above={t: 0.01 for t in Tier}, on_no_data=on_no_data)
    assert assess(rule, Tier.CANARY, measurement).outcome is expected


def test_thresholds_are_tiered_and_fail_below_works() -> None:
    assert assess(ERRORS, Tier.CANARY, Measurement((0.008,))).outcome is Outcome.FAIL
    assert assess(ERRORS, Tier.PROGRESSIVE, Measurement((0.008,))).outcome is Outcome.PASS
    rule = GateRule("pass_rate", "q", fail_below={t: 0.98 for t in Tier})
    result = assess(rule, Tier.FINAL, Measurement((0.97,)))
    assert (result.outcome, result.value, result.threshold) == (Outcome.FAIL, 0.97, 0.98)


def test_since_carries_over_while_the_outcome_holds() -> None:
    fail = assess(ERRORS, Tier.CANARY, Measurement((0.05,)))
    first = next_view(None, ERRORS, Tier.CANARY, fail, "q", T0)
    later = next_view(first, ERRORS, Tier.CANARY, fail, "q", T0 + 4 * S)
    assert later.since == T0 and not later.sustained(T0 + 4 * S) and later.sustained(T0 + 5 * S)
    # A restart shorter than the window in the middle of a breach keeps its clock ...
    assert next_view(later, ERRORS, Tier.CANARY, fail, "q", T0 + 9 * S).since == T0
    # ... but one red measurement before a long outage and one after it are no breach ...
    assert next_view(later, ERRORS, Tier.CANARY, fail, "q", T0 + 70 * S).since == T0 + 70 * S
    # ... but time nobody watched never counts as green.
    ok = assess(ERRORS, Tier.CANARY, Measurement((0.0,)))
    green = next_view(None, ERRORS, Tier.CANARY, ok, "q", T0)
    assert next_view(green, ERRORS, Tier.CANARY, ok, "q", T0 + 2 * S).since == T0
    assert next_view(green, ERRORS, Tier.CANARY, ok, "q", T0 + 60 * S).since == T0 + 60 * S


def test_a_gate_is_due_on_its_interval_and_as_soon_as_the_tier_changes() -> None:
    tiered = GateRule("error_rate", "q", fail_above={Tier.CANARY: 0.005, Tier.PROGRESSIVE: 0.01})
    judged = next_view(
        None, tiered, Tier.CANARY, assess(tiered, Tier.CANARY, Measurement((0.004,))), "q", T0
    )
    views = {"error_rate": judged}
    assert due_gates([tiered], views, Tier.CANARY, T0 + 29 * S) == []
    assert due_gates([tiered], views, Tier.CANARY, T0 + 30 * S) == [tiered]
    assert due_gates([tiered], views, Tier.PROGRESSIVE, T0 + S) == [tiered]  # just advanced


def test_history_holds_only_when_every_point_agrees_and_nothing_is_missing() -> None:
    start, end = T0, T0 + 10 * S
    green = [(T0 + i * S, 0.001) for i in range(11)]
    assert history_holds(ERRORS, Tier.CANARY, Outcome.PASS, green, start, end)
    red_moment = [*green[:5], (T0 + 5 * S, 0.05), *green[6:]]
    assert not history_holds(ERRORS, Tier.CANARY, Outcome.PASS, red_moment, start, end)
    assert history_holds(ERRORS, Tier.CANARY, Outcome.FAIL, [(t, 0.05) for t, _ in green],
                         start, end)
    hole = [p for p in green if not S * 2 < p[0] - T0 < S * 7]  # 5 s unseen, over 3 intervals
    assert not history_holds(ERRORS, Tier.CANARY, Outcome.PASS, hole, start, end)
    assert not history_holds(ERRORS, Tier.CANARY, Outcome.PASS, [], start, end)
    # A gap the history shows green keeps the green time; the bot's word alone does not.
    ok = assess(ERRORS, Tier.CANARY, Measurement((0.0,)))
    before = next_view(None, ERRORS, Tier.CANARY, ok, "q", T0)
    assert next_view(before, ERRORS, Tier.CANARY, ok, "q", end, gap_held=True).since == T0
    assert next_view(before, ERRORS, Tier.CANARY, ok, "q", end).since == end
    # Red before and after a gap within the window: the history decides when there is one.
    red = assess(ERRORS, Tier.CANARY, Measurement((0.05,)))
    breach = next_view(None, ERRORS, Tier.CANARY, red, "q", T0)
    back = T0 + 4 * S  # more than 3 intervals, less than the 5 s window
    assert next_view(breach, ERRORS, Tier.CANARY, red, "q", back).since == T0
    assert next_view(breach, ERRORS, Tier.CANARY, red, "q", back, gap_held=False).since == back


# --- Evaluate ----------------------------------------------------------------------------


def test_a_sustained_red_gate_rolls_back_with_its_evidence() -> None:
    views = {
        "error_rate": view(ERRORS, Outcome.FAIL, T0 + 2 * S, 0.052),
        "p95": view(LATENCY, Outcome.PASS, T0),
    }
    assert isinstance(decide(spec(), running(), views, Evaluate(), T0 + 6 * S), Refusal)
    result = decide(spec(), running(), views, Evaluate(), T0 + 7 * S)
    assert isinstance(result, Decision)
    assert (result.status.state, result.status.percent) == (State.ROLLED_BACK, 0)
    assert result.change.verb == "rollback"
    assert "error_rate" in result.change.reason and "0.052" in result.change.reason
    assert [g.name for g in result.gates] == ["error_rate"]
    assert SetPercent("phase_4", 0, ()) in result.effects
    kinds = [e.kind for e in result.effects if isinstance(e, OpenIncident)]
    assert kinds == ["automatic_rollback"]


def test_auto_advance_only_after_a_green_soak_and_completion_after_the_last() -> None:
    green = {n: view(r, Outcome.PASS, T0) for n, r in RULES.items()}
    assert isinstance(decide(spec(), running(), green, Evaluate(), T0 + 9 * S), Refusal)
    result = decide(spec(), running(), green, Evaluate(), T0 + 10 * S)
    assert isinstance(result, Decision) and result.status.percent == 25
    # A gate that was red during the soak restarts it when it turns green.
    flapped = {**green, "p95": view(LATENCY, Outcome.PASS, T0 + 4 * S)}
    assert isinstance(decide(spec(), running(), flapped, Evaluate(), T0 + 10 * S), Refusal)
    assert isinstance(decide(spec(), running(), flapped, Evaluate(), T0 + 14 * S), Decision)
    # Manual advance: the soak ending green changes nothing by itself ...
    manual = spec(AdvanceMode.MANUAL)
    assert isinstance(decide(manual, running(), green, Evaluate(), T0 + 60 * S), Refusal)
    # ... and after the last stage's watch the rollout completes.
    done = decide(manual, running(100), green, Evaluate(), T0 + 60 * S)
    assert isinstance(done, Decision) and done.status.state is State.COMPLETED


def test_unknown_gates_hold_then_page_once_past_the_grace() -> None:
    views = {
        "error_rate": view(ERRORS, Outcome.SOURCE_DOWN, T0, None),
        "p95": view(LATENCY, Outcome.PASS, T0),
    }
    # The hold itself is said at once (tests/unit/test_holds.py); then nothing until the grace.
    holding = replace(running(), held_by=(GateHold("error_rate", Outcome.SOURCE_DOWN, T0),))
    assert isinstance(decide(spec(), holding, views, Evaluate(), T0 + 29 * S), Refusal)
    held = decide(spec(), holding, views, Evaluate(), T0 + 30 * S)
    assert isinstance(held, Decision)
    assert held.status == holding and held.change.verb == "hold"
    assert [e.kind for e in held.effects if isinstance(e, OpenIncident)] == ["source_down"]
    paged = replace(views["error_rate"], escalated=True)
    escalated = {**views, "error_rate": paged}
    assert isinstance(decide(spec(), holding, escalated, Evaluate(), T0 + 99 * S), Refusal)


def test_manual_advance_is_refused_with_the_reasons() -> None:
    views = {"error_rate": view(ERRORS, Outcome.NO_DATA, T0, None)}
    result = decide(spec(AdvanceMode.MANUAL), running(), views, Advance(), T0 + 60 * S)
    assert isinstance(result, Refusal)
    assert "error_rate: no data" in result.problem and "p95: not measured yet" in result.problem
    forced = decide(spec(), running(), views, Advance(None, True, "hotfix"), T0)
    assert isinstance(forced, Decision) and forced.change.forced


# --- the property -------------------------------------------------------------------------

OUTCOMES = st.sampled_from(list(Outcome))
COMMANDS = st.one_of(
    st.just(Start()),
    st.builds(Advance, st.sampled_from([None, 10, 25, 50, 100])),
    st.just(Pause("p")),
    st.just(Resume()),
    st.builds(Rollback, st.sampled_from([0, 5])),
    st.just(Evaluate()),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(1, 8)),
        st.tuples(st.just("measure"), st.sampled_from(sorted(RULES)), OUTCOMES),
        st.tuples(st.just("command"), COMMANDS),
    ),
    max_size=60,
)
VALUES = {Outcome.PASS: 0.0, Outcome.FAIL: 0.5, Outcome.NO_DATA: None, Outcome.SOURCE_DOWN: None}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, advance=st.sampled_from(list(AdvanceMode)))
def test_no_advance_on_a_red_or_unknown_gate_and_every_sustained_fail_rolls_back(
    steps: list[tuple[object, ...]], advance: AdvanceMode
) -> None:
    the_spec = spec(advance)
    status = RolloutStatus()
    views: dict[str, GateView] = {}
    now = T0
    for step in steps:
        if step[0] == "wait":
            now += int(step[1]) * S  # type: ignore[call-overload]
            command: object = Evaluate()  # the loop evaluates on every tick
        elif step[0] == "measure":
            rule, outcome = RULES[str(step[1])], step[2]
            assert isinstance(outcome, Outcome)
            measurement = (
                Measurement.down("down")
                if outcome is Outcome.SOURCE_DOWN
                else Measurement(() if VALUES[outcome] is None else (VALUES[outcome],))  # type: ignore[arg-type]
            )
            tier = Tier.CANARY if status.percent <= 10 else Tier.FINAL
            result = assess(rule, tier, measurement)
            views[rule.name] = next_view(views.get(rule.name), rule, tier, result, "q", now)
            command = Evaluate()
        else:
            command = step[1]
        sustained_red = [
            v for v in views.values() if v.outcome is Outcome.FAIL and v.sustained(now)
        ]
        result = decide(the_spec, status, views, command, now)  # type: ignore[arg-type]
        if isinstance(result, Refusal):
            if isinstance(command, Evaluate) and status.state in (State.PROGRESSING, State.PAUSED):
                assert not (sustained_red and status.percent > 0), "a sustained FAIL was ignored"
            continue
        new = result.status
        if (
            new.percent > status.percent
            and status.state is not State.PENDING
            and (result.change.verb != "start")
        ):
            assert not result.change.forced
            not_green = [
                n for n in the_spec.gates if n not in views or views[n].outcome is not Outcome.PASS
            ]
            assert not not_green, f"advanced with {not_green} not green"
        if isinstance(command, Evaluate) and sustained_red and status.percent > 0:
            assert status.state in (State.PROGRESSING, State.PAUSED)
            assert (new.state, new.percent) == (State.ROLLED_BACK, 0)
        if result.change.verb == "start":
            views = {}  # the service clears gate states when a new run starts
        status = new
