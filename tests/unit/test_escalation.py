"""The pure escalation: steps, transitions and the token, with a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain import escalation as esc
from bot.domain.escalation import (
    ChainSnapshot,
    Escalation,
    IncidentState,
    Level,
    NobodyAnswered,
    Page,
    Refused,
    Remind,
    TargetKind,
    Transition,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
CHAIN = ChainSnapshot(
    (
        Level(TargetKind.USER, "U0FORGE", 5 * MIN),
        Level(TargetKind.USER, "U0HUDSON", 5 * MIN),
        Level(TargetKind.GROUP, "S0LEADS", 10 * MIN),
    ),
    repeat=2,
    remind_after=30 * MIN,
)


def run_to_end(snapshot: ChainSnapshot) -> list[tuple[int, str]]:
    """Run every step at its due time; (minute, who) for each page, "channel" at the end."""
    out: list[tuple[int, str]] = []
    now, t = T0, esc.begin(snapshot, T0)
    while True:
        for action in t.actions:
            minute = int((now - T0).total_seconds() // 60)
            if isinstance(action, Page):
                out.append((minute, action.target.target))
            elif isinstance(action, NobodyAnswered):
                out.append((minute, "channel"))
        if t.escalation.next_due is None:
            return out
        now = t.escalation.next_due
        t = esc.step(snapshot, t.escalation, now)


def test_the_chain_runs_three_times_then_tells_the_channel() -> None:
    assert run_to_end(CHAIN) == [
        (0, "U0FORGE"), (5, "U0HUDSON"), (10, "S0LEADS"),
        (20, "U0FORGE"), (25, "U0HUDSON"), (30, "S0LEADS"),
        (40, "U0FORGE"), (45, "U0HUDSON"), (50, "S0LEADS"),
        (60, "channel"),
    ]  # fmt: skip


def test_a_step_before_its_time_does_nothing_and_every_run_moves_the_token() -> None:
    t = esc.begin(CHAIN, T0)
    assert t.escalation.next_due == T0 + 5 * MIN
    early = esc.step(CHAIN, t.escalation, T0 + 4 * MIN)
    assert early.escalation == t.escalation and not early.actions
    on_time = esc.step(CHAIN, t.escalation, T0 + 5 * MIN)
    assert on_time.escalation.token == t.escalation.token + 1
    assert on_time.actions == (Page(1, 0, CHAIN.levels[1]),)


def test_acknowledge_stops_paging_and_reminds_the_acknowledger() -> None:
    t = esc.begin(CHAIN, T0)
    acked = esc.acknowledge(CHAIN, t.escalation, "U0FORGE", T0 + 2 * MIN)
    assert isinstance(acked, Transition)
    cursor = acked.escalation
    assert cursor.state is IncidentState.ACKNOWLEDGED and cursor.token == t.escalation.token + 1
    assert cursor.next_due == T0 + 32 * MIN
    reminder = esc.step(CHAIN, cursor, T0 + 32 * MIN)
    assert reminder.actions == (Remind("U0FORGE", T0 + 2 * MIN),)
    assert reminder.escalation.next_due == T0 + 62 * MIN
    again = esc.acknowledge(CHAIN, cursor, "U0HUDSON", T0 + 3 * MIN)
    assert again == Refused("it is already acknowledged by <@U0FORGE>")


def test_without_remind_after_an_acknowledged_incident_waits_quietly() -> None:
    quiet = ChainSnapshot(CHAIN.levels, 0, None)
    acked = esc.acknowledge(quiet, esc.begin(quiet, T0).escalation, "U0FORGE", T0)
    assert isinstance(acked, Transition) and acked.escalation.next_due is None


def test_resolve_ends_everything_and_refuses_later_acts() -> None:
    t = esc.begin(CHAIN, T0)
    done = esc.resolve(t.escalation, "alertmanager", T0 + MIN)
    assert isinstance(done, Transition)
    assert done.escalation.state is IncidentState.RESOLVED and done.escalation.next_due is None
    assert esc.acknowledge(CHAIN, done.escalation, "U0FORGE", T0) == Refused(
        "it is already resolved by alertmanager"
    )
    assert isinstance(esc.resolve(done.escalation, "U0OPS", T0), Refused)
    assert isinstance(esc.silence(done.escalation, "U0OPS", T0), Refused)


def test_silence_pauses_then_starts_the_chain_again() -> None:
    t = esc.begin(CHAIN, T0)
    t = esc.step(CHAIN, t.escalation, T0 + 5 * MIN)  # level 2 paged
    quiet = esc.silence(t.escalation, "U0HUDSON", T0 + 6 * MIN)
    assert isinstance(quiet, Transition)
    assert quiet.escalation.next_due == T0 + 66 * MIN
    woke = esc.step(CHAIN, quiet.escalation, T0 + 66 * MIN)
    assert woke.actions == (Page(0, 0, CHAIN.levels[0]),)
    assert woke.escalation.state is IncidentState.OPEN


def test_unsilence_starts_the_chain_again_at_once_and_only_when_silenced() -> None:
    t = esc.begin(CHAIN, T0)
    quiet = esc.silence(t.escalation, "U0HUDSON", T0 + MIN, timedelta(hours=2))
    assert isinstance(quiet, Transition)
    assert quiet.escalation.silenced_until == T0 + MIN + timedelta(hours=2)
    woke = esc.unsilence(CHAIN, quiet.escalation, "U0HUDSON", T0 + 10 * MIN)
    assert isinstance(woke, Transition)
    assert woke.actions == (Page(0, 0, CHAIN.levels[0]),)
    assert woke.escalation.state is IncidentState.OPEN
    assert woke.escalation.silenced_until is None
    assert woke.escalation.token > quiet.escalation.token  # a silence timer in flight is void
    assert isinstance(esc.unsilence(CHAIN, woke.escalation, "U0HUDSON", T0), Refused)


def test_an_empty_chain_pages_nobody() -> None:
    t = esc.begin(ChainSnapshot(), T0)
    assert t.actions == () and t.escalation.next_due is None


def test_the_snapshot_round_trips_through_json() -> None:
    assert ChainSnapshot.from_json(CHAIN.to_json()) == CHAIN
    assert ChainSnapshot.from_json(ChainSnapshot().to_json()) == ChainSnapshot()


def test_who_may_respond() -> None:
    assert esc.may_respond(CHAIN, "U0FORGE", ["U0OPS"])
    assert esc.may_respond(CHAIN, "U0OPS", ["U0OPS"])
    assert not esc.may_respond(CHAIN, "U0STRANGER", ["U0OPS"])
    assert esc.may_respond(CHAIN, "U0LEAD", ["U0OPS"], group_members=["U0LEAD"])
    assert esc.may_respond(ChainSnapshot(), "anyone", [])


def test_mentions() -> None:
    assert CHAIN.levels[0].mention() == "<@U0FORGE>"
    assert CHAIN.levels[2].mention() == "<!subteam^S0LEADS>"
    assert Escalation().state is IncidentState.OPEN
