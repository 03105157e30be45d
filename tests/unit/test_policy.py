"""The safety policy decided in the pure domain: roles, freeze windows, the emergency freeze
and the two-person rule, as `decide` applies them with a fixed `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.plans import BUILTIN_PLANS
from bot.domain.policy import EmergencyFreeze, FreezeWindow, Person, Policy, Role, TwoPerson
from bot.domain.rollout import (
    Advance,
    AdvanceMode,
    Cancel,
    Confirm,
    Context,
    Decision,
    Evaluate,
    Expire,
    Pause,
    Refusal,
    Resume,
    Rollback,
    RolloutSpec,
    RolloutStatus,
    Start,
    State,
    decide,
    freeze_all,
)
from bot.render.blocks import parent_message

PARIS = ZoneInfo("Europe/Paris")
# Wednesday 2026-12-02 10:00 in Paris
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
NIGHTS = FreezeWindow("nights", daily=(time(18), time(8)))
WEEKEND = FreezeWindow("weekend", days=frozenset({5, 6}))
HOLIDAYS = FreezeWindow("holidays", dates=frozenset({date(2026, 12, 24), date(2026, 12, 31)}))
HOLDERS = {
    Role.LEAD: ("U0CORA", "U0ALEX"),
    Role.OPERATOR: ("U0FORGE",),
    Role.OWNER: ("U0OWN",),
}
POLICY = Policy(
    holders=HOLDERS,
    two_person=TwoPerson(50, timedelta(minutes=30)),
    windows=(NIGHTS, WEEKEND, HOLIDAYS),
    timezone=PARIS,
)
SPEC = RolloutSpec("phase-4", "phase_4", BUILTIN_PLANS["safe"], policy=POLICY)
CORA = Person("U0CORA", frozenset({Role.LEAD}))
ALEX = Person("U0ALEX", frozenset({Role.LEAD}))
FORGE = Person("U0FORGE", frozenset({Role.OPERATOR}))
OWNER = Person("U0OWN", frozenset({Role.OWNER}))
STRANGER = Person("U0STRANGER")


def paris(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def at(percent: int, state: State = State.PROGRESSING, version: int = 3) -> RolloutStatus:
    index = SPEC.plan.index_at_or_below(percent)
    return RolloutStatus(state, percent, index, NOW - timedelta(days=2), "", version)


def by(person: Person | None, emergency: EmergencyFreeze | None = None) -> Context:
    return Context(person, emergency)


# --- freeze windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "until"),
    [
        (paris(2026, 12, 2, 19), paris(2026, 12, 3, 8)),  # Wednesday evening
        (paris(2026, 12, 3, 7, 59), paris(2026, 12, 3, 8)),  # the next morning
        (paris(2026, 12, 4, 18), paris(2026, 12, 7, 8)),  # Friday night runs into the weekend
        (paris(2026, 12, 6, 12), paris(2026, 12, 7, 8)),  # Sunday noon
        (paris(2026, 12, 24, 11), paris(2026, 12, 25, 8)),  # a date, then that night
    ],
)
def test_a_freeze_window_holds_until_no_window_does(moment: datetime, until: datetime) -> None:
    frozen = POLICY.frozen(moment)
    assert frozen is not None and frozen.until == until


@pytest.mark.parametrize(
    "moment", [paris(2026, 12, 2, 8), paris(2026, 12, 2, 17, 59), paris(2026, 12, 7, 9)]
)
def test_outside_every_window_nothing_is_frozen(moment: datetime) -> None:
    assert POLICY.frozen(moment) is None


def test_windows_that_cover_every_moment_have_no_end() -> None:
    always = Policy(windows=(FreezeWindow(days=frozenset(range(7))),))
    assert always.window_end(datetime(2026, 12, 2, 12)) is None


def test_an_advance_in_a_window_is_refused_with_the_windows_end() -> None:
    result = decide(SPEC, at(10), {}, Advance(25), paris(2026, 12, 4, 20), by(CORA))
    assert isinstance(result, Refusal)
    assert "frozen until Mon 2026-12-07 08:00 (CET)" in result.problem
    assert "nights" in result.problem and "weekend" in result.problem
    assert "Pause, rollback and ack still work" in result.hint


@pytest.mark.parametrize(
    "command", [Pause("db slow"), Rollback(0, "errors"), Rollback(5, "errors")]
)
def test_pause_and_rollback_work_in_a_window(command: Pause | Rollback) -> None:
    result = decide(SPEC, at(10), {}, command, paris(2026, 12, 5, 3), by(FORGE))
    assert isinstance(result, Decision)


def test_starting_is_an_advance_and_waits_for_the_window_to_end() -> None:
    result = decide(SPEC, RolloutStatus(), {}, Start(), paris(2026, 12, 5, 12), by(CORA))
    assert isinstance(result, Refusal) and "frozen until" in result.problem


def test_an_auto_advance_due_in_a_window_waits_says_until_when_and_goes_on_after() -> None:
    auto = replace(SPEC, advance=AdvanceMode.AUTO)
    night = paris(2026, 12, 2, 23)
    waited = decide(auto, at(10), {}, Evaluate(), night)
    assert isinstance(waited, Decision) and waited.change.verb == "wait"
    assert waited.status.percent == 10
    assert waited.status.waiting is not None
    assert waited.status.waiting.until == paris(2026, 12, 3, 8)
    assert "nights" in waited.change.window
    # told once: the next look in the same window changes nothing
    again = decide(auto, waited.status, {}, Evaluate(), night + timedelta(hours=1))
    assert isinstance(again, Refusal)
    after = decide(auto, waited.status, {}, Evaluate(), paris(2026, 12, 3, 8))
    assert isinstance(after, Decision) and after.change.verb == "advance"
    assert after.status.percent == 25 and after.status.waiting is None


# --- the emergency freeze -------------------------------------------------------------

FROZEN = EmergencyFreeze("incident 4711", "U0CORA", NOW)


@pytest.mark.parametrize(
    "command", [Advance(25), Advance(25, force=True, reason="hotfix"), Advance(None)]
)
def test_the_emergency_freeze_stops_typed_advances_even_forced(command: Advance) -> None:
    result = decide(SPEC, at(10), {}, command, NOW, by(CORA, FROZEN))
    assert isinstance(result, Refusal)
    assert result.problem == "Every advance is frozen: incident 4711."


def test_the_emergency_freeze_holds_an_auto_advance_until_lifted() -> None:
    auto = replace(SPEC, advance=AdvanceMode.AUTO)
    waited = decide(auto, at(10), {}, Evaluate(), NOW, by(None, FROZEN))
    assert isinstance(waited, Decision) and waited.status.waiting is not None
    assert waited.status.waiting.until is None and waited.status.waiting.frozen
    lifted = decide(auto, waited.status, {}, Evaluate(), NOW)
    assert isinstance(lifted, Decision) and lifted.status.percent == 25


def test_only_leads_freeze_and_a_freeze_needs_a_reason() -> None:
    assert isinstance(freeze_all(POLICY, FORGE, None, "x", NOW), Refusal)
    assert isinstance(freeze_all(POLICY, CORA, None, "  ", NOW), Refusal)
    assert isinstance(freeze_all(POLICY, CORA, FROZEN, "again", NOW), Refusal)
    assert freeze_all(POLICY, CORA, None, "incident", NOW) == EmergencyFreeze(
        "incident", "U0CORA", NOW
    )


# --- roles ----------------------------------------------------------------------------


def test_a_refusal_names_the_role_and_who_holds_it() -> None:
    result = decide(SPEC, at(10), {}, Advance(25), NOW, by(FORGE))
    assert isinstance(result, Refusal)
    assert result.problem == (
        "You may not advance phase-4: that needs a lead or an owner of phase-4."
    )
    assert result.who == ("U0CORA", "U0ALEX", "U0OWN")


def test_owners_may_act_on_their_rollout() -> None:
    assert isinstance(decide(SPEC, at(10), {}, Advance(25), NOW, by(OWNER)), Decision)
    assert isinstance(decide(SPEC, at(10), {}, Pause(), NOW, by(OWNER)), Decision)


def test_roles_rollback_names_who_may_roll_back() -> None:
    holders = {**HOLDERS, Role.ROLLBACK: ("U0SRE",)}
    spec = replace(SPEC, policy=replace(POLICY, holders=holders))
    refused = decide(spec, at(10), {}, Rollback(), NOW, by(CORA))
    assert isinstance(refused, Refusal) and refused.who == ("U0SRE",)
    sre = Person("U0SRE", frozenset({Role.ROLLBACK}))
    assert isinstance(decide(spec, at(10), {}, Rollback(), NOW, by(sre)), Decision)


# --- the two-person rule --------------------------------------------------------------


def asked(
    command: Advance | Resume | Start | None = None, status: RolloutStatus | None = None
) -> Decision:
    result = decide(SPEC, status or at(25), {}, command or Advance(50), NOW, by(CORA))
    assert isinstance(result, Decision) and result.change.verb == "request", result
    return result


def test_a_big_step_is_only_asked_for() -> None:
    request = asked()
    assert request.status.percent == 25  # nothing moved
    pending = request.status.pending
    assert pending is not None and pending.asker == "U0CORA" and pending.to_percent == 50
    assert pending.expires_at == NOW + timedelta(minutes=30)
    assert request.status.version == 4 and pending.id == 4


def test_small_steps_need_no_second_person() -> None:
    result = decide(SPEC, at(10), {}, Advance(25), NOW, by(CORA))
    assert isinstance(result, Decision) and result.status.percent == 25


def test_another_lead_confirms_and_the_audit_says_who_asked_and_who_confirmed() -> None:
    request = asked()
    done = decide(SPEC, request.status, {}, Confirm(4), NOW + timedelta(minutes=5), by(ALEX))
    assert isinstance(done, Decision) and done.status.percent == 50
    assert (done.change.asked_by, done.change.confirmed_by) == ("U0CORA", "U0ALEX")
    assert done.status.pending is None


def test_the_asker_cannot_confirm_their_own_step() -> None:
    request = asked()
    result = decide(SPEC, request.status, {}, Confirm(4), NOW, by(CORA))
    assert isinstance(result, Refusal) and "you cannot confirm it" in result.problem
    assert "U0CORA" not in result.who


def test_someone_without_the_role_cannot_confirm() -> None:
    request = asked()
    result = decide(SPEC, request.status, {}, Confirm(4), NOW, by(FORGE))
    assert isinstance(result, Refusal) and result.problem.startswith("You may not advance")


def test_a_request_expires() -> None:
    request = asked()
    late = NOW + timedelta(minutes=30)
    refused = decide(SPEC, request.status, {}, Confirm(4), late, by(ALEX))
    assert isinstance(refused, Refusal) and "expired" in refused.problem
    expired = decide(SPEC, request.status, {}, Expire(4), late)
    assert isinstance(expired, Decision) and expired.status.pending is None
    assert expired.change.verb == "expire"
    early = decide(SPEC, request.status, {}, Expire(4), late - timedelta(seconds=1))
    assert isinstance(early, Refusal)


def test_a_confirm_after_the_rollout_moved_does_nothing_and_says_why() -> None:
    request = asked()
    paused = decide(SPEC, request.status, {}, Pause("db"), NOW, by(FORGE))
    assert isinstance(paused, Decision) and paused.status.pending is None
    stale = decide(SPEC, paused.status, {}, Confirm(4), NOW, by(ALEX))
    assert isinstance(stale, Refusal)
    assert "no longer open" in stale.problem and "paused at 25 %" in stale.problem


def test_forced_steps_resumes_and_the_instant_plan_need_two_too() -> None:
    asked(Advance(75, force=True, reason="hotfix"))
    asked(Resume(), at(50, State.PAUSED))
    instant = replace(SPEC, plan=BUILTIN_PLANS["instant"])
    result = decide(instant, RolloutStatus(), {}, Start(), NOW, by(CORA))
    assert isinstance(result, Decision) and result.change.verb == "request"


def test_a_request_refused_by_the_freeze_is_not_recorded() -> None:
    result = decide(SPEC, at(25), {}, Advance(50), paris(2026, 12, 5, 12), by(CORA))
    assert isinstance(result, Refusal) and "frozen" in result.problem


def test_an_auto_advance_into_two_person_territory_waits_for_people() -> None:
    auto = replace(SPEC, advance=AdvanceMode.AUTO, policy=replace(POLICY, windows=()))
    waited = decide(auto, at(25), {}, Evaluate(), NOW)
    assert isinstance(waited, Decision) and waited.change.verb == "wait"
    assert waited.status.percent == 25 and "two people" in waited.change.reason


def test_the_asker_or_someone_with_the_role_cancels() -> None:
    request = asked()
    assert isinstance(decide(SPEC, request.status, {}, Cancel(4), NOW, by(FORGE)), Refusal)
    cancelled = decide(SPEC, request.status, {}, Cancel(4), NOW, by(CORA))
    assert isinstance(cancelled, Decision) and cancelled.status.pending is None


def test_a_second_big_step_while_one_waits_is_refused() -> None:
    request = asked()
    again = decide(SPEC, request.status, {}, Advance(75), NOW, by(ALEX))
    assert isinstance(again, Refusal) and "waiting for a second person" in again.problem


def test_a_waiting_request_hides_advance_but_never_pause_or_rollback() -> None:
    request = asked()
    message = parent_message(SPEC, request.status)
    rows = [b["elements"] for b in message["blocks"] if b["type"] == "actions"]
    ids = [e["action_id"] for row in rows for e in row]
    assert ids == ["rollout_pause", "rollout_rollback", "rollout_confirm", "rollout_cancel"]
