"""On-call escalation: a chain snapshot, a cursor, and pure transitions between them.

When an incident opens, the on-call chain is copied onto it (`ChainSnapshot`); editing
the config later changes nothing for it. Progress is an `Escalation`: the state, the
index of the next page in the chain laid out round after round, when that step is due,
and a token. Every transition moves the token on, so a step already in flight (a timer
claimed before an acknowledgement) sees a stale token and does nothing.

Each state maps to one small step function through a table (`_STEPS`); each returns
the new cursor and what to do (page someone, tell the channel nobody answered, remind
the acknowledger). Pure: no clock, no I/O; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

SILENCE_DEFAULT = timedelta(hours=1)


class TargetKind(StrEnum):
    USER = "user"
    GROUP = "group"


@dataclass(frozen=True)
class Level:
    """One level of the chain: a Slack user or user group, and how long to wait for it."""

    kind: TargetKind
    target: str
    wait: timedelta

    def mention(self) -> str:
        return f"<@{self.target}>" if self.kind is TargetKind.USER else f"<!subteam^{self.target}>"


@dataclass(frozen=True)
class ChainSnapshot:
    """The chain as it was when the incident opened."""

    levels: tuple[Level, ...] = ()
    repeat: int = 0  # how many times the chain runs again after the first round
    remind_after: timedelta | None = None

    @property
    def rounds(self) -> int:
        return self.repeat + 1

    @property
    def total_steps(self) -> int:
        return len(self.levels) * self.rounds

    def users(self) -> frozenset[str]:
        return frozenset(lv.target for lv in self.levels if lv.kind is TargetKind.USER)

    def groups(self) -> tuple[str, ...]:
        return tuple(lv.target for lv in self.levels if lv.kind is TargetKind.GROUP)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "levels": [
                {"kind": lv.kind.value, "target": lv.target, "wait": int(lv.wait.total_seconds())}
                for lv in self.levels
            ],
            "repeat": self.repeat,
            "remind_after": None
            if self.remind_after is None
            else int(self.remind_after.total_seconds()),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainSnapshot:
        levels = tuple(
            Level(TargetKind(lv["kind"]), str(lv["target"]), timedelta(seconds=int(lv["wait"])))
            for lv in data.get("levels", [])
        )
        remind = data.get("remind_after")
        return cls(
            levels,
            int(data.get("repeat", 0)),
            None if remind is None else timedelta(seconds=int(remind)),
        )


class IncidentState(StrEnum):
    OPEN = "open"  # escalating (or the chain ran out and nobody answered)
    ACKNOWLEDGED = "acknowledged"
    SILENCED = "silenced"  # no pages until `silenced_until`; then the chain starts again
    RESOLVED = "resolved"


LIVE_STATES = frozenset({IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.SILENCED})


@dataclass(frozen=True)
class Escalation:
    """The cursor: where the incident's escalation stands."""

    state: IncidentState = IncidentState.OPEN
    step: int = 0  # index of the next page, over all rounds
    next_due: datetime | None = None
    token: int = 0
    exhausted: bool = False  # the chain ran out and the channel was told
    acked_by: str | None = None
    acked_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    silenced_until: datetime | None = None


# --- what a transition asks the service to do -------------------------------------------


@dataclass(frozen=True)
class Page:
    level: int  # 0-based index in the chain
    round: int  # 0-based
    target: Level


@dataclass(frozen=True)
class NobodyAnswered:
    rounds: int


@dataclass(frozen=True)
class Remind:
    user: str
    acked_at: datetime


Action = Page | NobodyAnswered | Remind


@dataclass(frozen=True)
class Transition:
    escalation: Escalation
    actions: tuple[Action, ...] = ()
    verb: str = ""  # what the incident log records: paged, exhausted, acknowledged, …


@dataclass(frozen=True)
class Refused:
    """A transition that does not apply, in words for the person who asked."""

    reason: str


# --- steps ----------------------------------------------------------------------------


def begin(snapshot: ChainSnapshot, now: datetime) -> Transition:
    """A fresh incident: page the first level now."""
    return step(snapshot, Escalation(next_due=now), now)


def step(snapshot: ChainSnapshot, cursor: Escalation, now: datetime) -> Transition:
    """Run the step that is due: the timer fired at or after `cursor.next_due`."""
    if cursor.next_due is None or now < cursor.next_due:
        return Transition(cursor)
    return _STEPS[cursor.state](snapshot, cursor, now)


def _step_open(snapshot: ChainSnapshot, cursor: Escalation, now: datetime) -> Transition:
    token = cursor.token + 1
    if cursor.step < snapshot.total_steps:
        index = cursor.step % len(snapshot.levels)
        level = snapshot.levels[index]
        page = Page(index, cursor.step // len(snapshot.levels), level)
        moved = replace(cursor, step=cursor.step + 1, next_due=now + level.wait, token=token)
        return Transition(moved, (page,), "paged")
    if cursor.exhausted or not snapshot.levels:
        return Transition(replace(cursor, next_due=None, token=token))
    done = replace(cursor, next_due=None, token=token, exhausted=True)
    return Transition(done, (NobodyAnswered(snapshot.rounds),), "exhausted")


def _step_acknowledged(snapshot: ChainSnapshot, cursor: Escalation, now: datetime) -> Transition:
    token = cursor.token + 1
    if snapshot.remind_after is None or cursor.acked_by is None or cursor.acked_at is None:
        return Transition(replace(cursor, next_due=None, token=token))
    moved = replace(cursor, next_due=now + snapshot.remind_after, token=token)
    return Transition(moved, (Remind(cursor.acked_by, cursor.acked_at),), "reminded")


def _step_silenced(snapshot: ChainSnapshot, cursor: Escalation, now: datetime) -> Transition:
    """The silence ended: the chain starts again from its first level."""
    woken = replace(cursor, state=IncidentState.OPEN, step=0, exhausted=False, silenced_until=None)
    after = _step_open(snapshot, woken, now)
    return replace(after, verb="unsilenced and paged" if after.actions else "unsilenced")


def _step_resolved(snapshot: ChainSnapshot, cursor: Escalation, now: datetime) -> Transition:
    return Transition(replace(cursor, next_due=None, token=cursor.token + 1))


_STEPS: dict[IncidentState, Callable[[ChainSnapshot, Escalation, datetime], Transition]] = {
    IncidentState.OPEN: _step_open,
    IncidentState.ACKNOWLEDGED: _step_acknowledged,
    IncidentState.SILENCED: _step_silenced,
    IncidentState.RESOLVED: _step_resolved,
}


# --- what people do -------------------------------------------------------------------


def acknowledge(
    snapshot: ChainSnapshot, cursor: Escalation, user: str, now: datetime
) -> Transition | Refused:
    """Stop the escalation. Reminds the acknowledger after `remind_after`, if set."""
    if cursor.state is IncidentState.RESOLVED:
        return Refused(f"it is already resolved{_by(cursor.resolved_by)}")
    if cursor.state is IncidentState.ACKNOWLEDGED:
        return Refused(f"it is already acknowledged{_by(cursor.acked_by)}")
    due = None if snapshot.remind_after is None else now + snapshot.remind_after
    acked = replace(
        cursor,
        state=IncidentState.ACKNOWLEDGED,
        acked_by=user,
        acked_at=now,
        silenced_until=None,
        next_due=due,
        token=cursor.token + 1,
    )
    return Transition(acked, (), "acknowledged")


def resolve(cursor: Escalation, user: str, now: datetime) -> Transition | Refused:
    if cursor.state is IncidentState.RESOLVED:
        return Refused(f"it is already resolved{_by(cursor.resolved_by)}")
    done = replace(
        cursor,
        state=IncidentState.RESOLVED,
        resolved_by=user,
        resolved_at=now,
        next_due=None,
        token=cursor.token + 1,
    )
    return Transition(done, (), "resolved")


def silence(
    cursor: Escalation, user: str, now: datetime, duration: timedelta = SILENCE_DEFAULT
) -> Transition | Refused:
    """No pages for `duration`; then the chain starts again from its first level."""
    if cursor.state is IncidentState.RESOLVED:
        return Refused(f"it is already resolved{_by(cursor.resolved_by)}")
    if cursor.state is IncidentState.ACKNOWLEDGED:
        return Refused(f"it is acknowledged{_by(cursor.acked_by)}, so nobody is being paged")
    until = now + duration
    quiet = replace(
        cursor,
        state=IncidentState.SILENCED,
        silenced_until=until,
        next_due=until,
        token=cursor.token + 1,
    )
    return Transition(quiet, (), "silenced")


def unsilence(
    snapshot: ChainSnapshot, cursor: Escalation, user: str, now: datetime
) -> Transition | Refused:
    """End a silence early: the chain starts again from its first level, as when it ends."""
    if cursor.state is not IncidentState.SILENCED:
        return Refused(f"it is not silenced (it is {cursor.state.value})")
    return _step_silenced(snapshot, cursor, now)


def may_respond(
    snapshot: ChainSnapshot,
    user: str,
    operators: Collection[str],
    group_members: Collection[str] = (),
) -> bool:
    """People in the chain (users, members of its groups) and operators may respond.
    With nobody named anywhere, anyone may."""
    if not snapshot.levels and not operators:
        return True
    return user in snapshot.users() or user in operators or user in group_members


def _by(user: str | None) -> str:
    if not user:
        return ""
    return f" by {user}" if user[:1] not in ("U", "W") else f" by <@{user}>"
