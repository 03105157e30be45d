"""Properties of `decide` under generated policies, freeze windows, people and command
sequences: no advance while frozen, and no step at or above the two-person threshold
without two distinct people who both hold a role that may make it.

(That a word which is no rollout's name moves nothing is checked where names are read:
`tests/integration/test_names_never_move.py`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.plans import Plan, Stage
from bot.domain.policy import EmergencyFreeze, FreezeWindow, Person, Policy, Role, TwoPerson
from bot.domain.rollout import (
    Advance,
    AdvanceMode,
    Cancel,
    Command,
    Confirm,
    Context,
    Decision,
    Evaluate,
    Expire,
    Pause,
    Resume,
    Rollback,
    RolloutSpec,
    RolloutStatus,
    Start,
    State,
    decide,
)

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
PLAN = Plan("short", tuple(Stage(p, timedelta(hours=1)) for p in (5, 10, 25, 50, 75, 100)))
USERS = ("U1", "U2", "U3")

roles = st.frozensets(st.sampled_from([Role.LEAD, *Role]), max_size=2)  # leads more often
windows = st.lists(
    st.builds(
        FreezeWindow,
        reason=st.just("w"),
        days=st.frozensets(st.integers(0, 6), max_size=3),
        daily=st.one_of(
            st.none(),
            st.tuples(st.integers(0, 23), st.integers(0, 23))
            .filter(lambda t: t[0] != t[1])
            .map(lambda t: (time(t[0]), time(t[1]))),
        ),
    ).filter(lambda w: bool(w.days) or w.daily is not None),
    max_size=1,
)
two_person = st.builds(
    TwoPerson,
    from_percent=st.sampled_from([5, 10, 25, 50, 75, 100]),
    confirm_within=st.sampled_from([timedelta(minutes=10), timedelta(hours=2)]),
)


@dataclass(frozen=True)
class Step:
    user: int | None  # an index in USERS, or None: the bot itself
    command: Command
    after: timedelta
    toggle_freeze: bool


commands = st.one_of(
    st.just(Start()),
    st.builds(
        Advance,
        target=st.one_of(st.none(), st.sampled_from([10, 25, 50, 60, 75, 100])),
        force=st.booleans(),
        reason=st.just("r"),
    ),
    st.just(Pause("p")),
    st.just(Resume()),
    st.builds(Rollback, to=st.sampled_from([0, 5, 25])),
    st.builds(Confirm, request=st.one_of(st.none(), st.integers(1, 30))),
    st.just(Confirm()),  # the commonest answer to a request: weighted up
    st.just(Confirm()),
    st.builds(Cancel, request=st.one_of(st.none(), st.integers(1, 30))),
)
steps = st.lists(
    st.builds(
        Step,
        user=st.sampled_from([None, 0, 1, 2, 0, 1, 2]),  # None: the bot looks
        command=commands,
        after=st.sampled_from(
            [timedelta(0), timedelta(minutes=7), timedelta(minutes=7), timedelta(hours=1)]
        ),
        toggle_freeze=st.sampled_from([False] * 5 + [True]),  # a lead's /rollout (un)freeze
    ),
    min_size=1,
    max_size=30,
)


def raises_exposure(before: RolloutStatus, after: RolloutStatus) -> bool:
    return after.percent > before.percent


@settings(max_examples=1500, deadline=None)
@given(
    held=st.lists(roles, min_size=len(USERS), max_size=len(USERS)),
    windows=windows,
    two=two_person,
    auto=st.booleans(),
    stage=st.one_of(st.integers(0, len(PLAN.stages) - 2), st.none()),
    sequence=steps,
)
def test_no_advance_while_frozen_and_no_big_step_without_two_people(
    held: list[frozenset[Role]],
    windows: list[FreezeWindow],
    two: TwoPerson,
    auto: bool,
    stage: int | None,
    sequence: list[Step],
) -> None:
    held[0] |= {Role.LEAD}  # someone may always push it forward
    people = {u: Person(u, r) for u, r in zip(USERS, held, strict=True)}
    holders = {
        role: tuple(u for u, p in people.items() if role in p.roles) for role in Role
    }
    policy = Policy(holders, two, tuple(windows), ZoneInfo("Europe/Paris"))
    spec = RolloutSpec(
        "r", "f", PLAN, advance=AdvanceMode.AUTO if auto else AdvanceMode.MANUAL, policy=policy
    )
    status, now = RolloutStatus(), T0
    if stage is not None:  # already running: at a stage, two hours in
        percent = PLAN.stages[stage].percent
        status = RolloutStatus(State.PROGRESSING, percent, stage, T0 - timedelta(hours=2))
    emergency: EmergencyFreeze | None = None
    for step in sequence:
        now += step.after
        if step.toggle_freeze and step.user is not None:
            emergency = None if emergency else EmergencyFreeze("stop", USERS[step.user], now)
        command = step.command
        if step.user is None:  # the bot: a look after a tick or a soak, or an expiry timer
            pending = status.pending
            command = Expire(pending.id) if pending and step.toggle_freeze else Evaluate()
        typed = step.user is not None and not isinstance(command, Evaluate)  # only the bot looks
        person = people[USERS[step.user]] if typed and step.user is not None else None
        result = decide(spec, status, {}, command, now, Context(person, emergency))
        if not isinstance(result, Decision):
            continue
        new = result.status
        if raises_exposure(status, new):
            assert policy.frozen(now, emergency) is None, (status, new, now)
        change = result.change
        raising = change.verb in ("start", "advance", "resume")
        step_name = "force" if change.forced else change.verb
        if raising and new.percent >= two.from_percent:
            asker, confirmer = change.asked_by, change.confirmed_by
            assert asker and confirmer and asker != confirmer, change
            assert policy.may(step_name, people[asker]), (asker, step_name)
            assert policy.may(step_name, people[confirmer]), (confirmer, step_name)
        if raising and person is not None and not change.confirmed_by:
            assert policy.may(step_name, person)
        status = new
