"""A rehearsal replays recorded gate values through the live bot's own decide: table tests
on synthetic histories, with a fixed period."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from bot.domain.assess import GateRule
from bot.domain.plans import Plan, Stage, Tier
from bot.domain.policy import FreezeWindow, Policy, TwoPerson
from bot.domain.rehearsal import History, rehearse
from bot.domain.rehearsal_stats import gate_stats
from bot.domain.rollout import RolloutSpec

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
STEP = timedelta(seconds=30)
PLAN = Plan("short", (Stage(5, H), Stage(25, H), Stage(100, 2 * H)))
ERRORS = GateRule(
    "error_rate",
    'errors{flag="{flag}"}',
    fail_above={Tier.CANARY: 0.005, Tier.PROGRESSIVE: 0.01, Tier.FINAL: 0.01},
    window={t: 5 * M for t in Tier},
    interval=STEP,
)
SPEC = RolloutSpec("checkout", "checkout_v2", PLAN, ("error_rate",))


def history(
    end: timedelta, value: float = 0.001, bad: tuple[timedelta, timedelta] | None = None
) -> History:
    times, values = [], []
    at = T0
    while at <= T0 + end:
        inside = bad is not None and T0 + bad[0] <= at < T0 + bad[1]
        times.append(at)
        values.append((0.05 if inside else value,))
        at += STEP
    return History(ERRORS, tuple(times), tuple(values))


def test_a_quiet_period_reaches_100_when_the_soaks_allow() -> None:
    result = rehearse(SPEC, [history(5 * H)], T0, T0 + 5 * H)
    moves = [(s.verb, s.to_percent, s.at - T0) for s in result.changes()]
    assert moves == [
        ("start", 5, timedelta(0)),
        ("advance", 25, H),
        ("advance", 100, 2 * H),
        ("complete", 100, 4 * H),
    ]
    assert result.full_at == T0 + 2 * H
    assert "reached 100 %" in result.outcome
    advance = result.changes()[1]
    assert advance.gates[0].value == 0.001 and advance.gates[0].threshold == 0.005


def test_an_incident_rolls_back_after_its_window_with_the_gate_value() -> None:
    incident = (90 * M, 110 * M)  # 20 minutes at 25 %
    result = rehearse(SPEC, [history(5 * H, bad=incident)], T0, T0 + 5 * H)
    back = result.rolled_back
    assert back is not None
    assert abs(back.at - (T0 + incident[0] + 5 * M)) <= STEP
    assert back.from_percent == 25 and back.to_percent == 0
    assert back.gates[0].value == 0.05 and back.gates[0].threshold == 0.01
    assert back.gates[0].window == 5 * M
    assert result.full_at is None
    assert "rolled back from 25 %" in result.outcome


def test_missing_history_holds_and_never_counts_as_green() -> None:
    # Data for the first 30 minutes only: the gate goes no-data, the rollout is held at 5 %
    # and on-call would have been paged after the grace.
    result = rehearse(SPEC, [history(30 * M)], T0, T0 + 3 * H)
    verbs = [s.verb for s in result.steps]
    assert verbs[:3] == ["start", "hold_start", "hold"]
    assert result.final.percent == 5
    assert "would not have reached 100 %" in result.outcome


def test_a_freeze_window_holds_the_advance_until_it_ends() -> None:
    night = FreezeWindow("nights", daily=(time(1, 0), time(3, 0)))
    policy = Policy(windows=(night,), timezone=UTC)
    spec = RolloutSpec("checkout", "checkout_v2", PLAN, ("error_rate",), policy=policy)
    result = rehearse(spec, [history(6 * H)], T0, T0 + 6 * H)
    moves = [(s.verb, s.to_percent, s.at - T0) for s in result.steps if s.verb != "hold_end"]
    assert moves[:3] == [("start", 5, timedelta(0)), ("wait", 25, H), ("advance", 25, 3 * H)]


def test_the_two_person_rule_is_taken_as_met_and_said() -> None:
    policy = Policy(two_person=TwoPerson(25), timezone=UTC)
    spec = RolloutSpec("checkout", "checkout_v2", PLAN, ("error_rate",), policy=policy)
    result = rehearse(spec, [history(5 * H)], T0, T0 + 5 * H)
    assert result.two_person and result.full_at == T0 + 2 * H


def test_another_plan_can_be_rehearsed() -> None:
    slow = Plan("slow", (Stage(5, 3 * H), Stage(100, H)))
    result = rehearse(SPEC, [history(5 * H)], T0, T0 + 5 * H, plan=slow)
    assert result.plan.name == "slow" and result.full_at == T0 + 3 * H


def test_stats_per_tier_say_the_distribution_red_share_and_nearest_miss() -> None:
    data = history(2 * H, value=0.004, bad=(60 * M, 70 * M))
    stats = gate_stats(data, T0, T0 + 2 * H)
    canary = stats.tiers[0]
    assert canary.tier is Tier.CANARY and canary.threshold == 0.005
    assert canary.p50 == 0.004 and canary.worst == 0.05
    assert canary.red == 20 and canary.episodes == 1
    assert canary.nearest_miss is not None and canary.nearest_miss[1] == 0.004
    assert stats.no_data_share == 0.0 and stats.first_sample == T0


def test_stats_say_the_share_with_no_data_and_where_history_starts() -> None:
    late = history(2 * H)
    half = History(ERRORS, late.times[len(late.times) // 2 :], late.values[len(late.values) // 2 :])
    stats = gate_stats(half, T0, T0 + 2 * H)
    assert 0.49 < stats.no_data_share < 0.51
    assert stats.first_sample == T0 + H
