"""The safety policy: who may make a step, when advances are frozen, and which steps need
a second person. Pure: every answer is a function of the policy, the person and `now`.

- **Roles.** A step needs one of the roles in `MAY`. Roles come from the config (leads,
  operators, who may roll back, a rollout's owners); the service resolves user groups to
  members and hands `decide` the roles a person holds for that rollout. With no roles
  configured at all, everyone may do everything (the bot warns at start).
- **Freeze windows** (nights, weekends, dates) and the **emergency freeze** stop every
  step that raises a rollout's exposure, typed or automatic. Pause, rollback and ack
  always work.
- **Two-person rule.** A step to or above `from_percent` is only asked for; another
  person holding a role that may make it confirms it within `confirm_within`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum


class Role(StrEnum):
    LEAD = "lead"
    OPERATOR = "operator"
    ROLLBACK = "rollback"  # named under roles.rollback: who may roll back
    OWNER = "owner"  # a rollout's owners: may act on that rollout


# Steps that raise exposure: frozen by a window or the emergency freeze, and asked for
# (not made) at or above the two-person threshold.
RAISING = frozenset({"start", "advance", "force", "resume"})


@dataclass(frozen=True)
class Person:
    """Someone acting, with the roles they hold for the rollout at hand."""

    user: str
    roles: frozenset[Role] = frozenset()


@dataclass(frozen=True)
class TwoPerson:
    from_percent: int
    confirm_within: timedelta = timedelta(minutes=30)


_DAY_WORDS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class FreezeWindow:
    """When advances wait, in the config's timezone.

    `days` alone: those whole weekdays (0 = Monday). `dates` alone: those whole dates.
    `daily` (start, end): every day from start to end; an end at or before the start
    runs past midnight into the next day. With `days` or `dates` too, `daily` applies
    only on those days (a window that starts on one and ends the next morning).
    """

    reason: str = ""
    days: frozenset[int] = frozenset()
    dates: frozenset[date] = frozenset()
    daily: tuple[time, time] | None = None

    def _day_matches(self, day: date) -> bool:
        if not self.days and not self.dates:
            return True
        return day.weekday() in self.days or day in self.dates

    def covers(self, local: datetime) -> bool:
        """Whether this window holds at a wall-clock time (naive, in the config's zone)."""
        day, clock = local.date(), local.time()
        if self.daily is None:
            return self._day_matches(day)
        start, end = self.daily
        if start < end:
            return self._day_matches(day) and start <= clock < end
        # past midnight: 18:00-08:00 covers the evening of a day and the next morning
        if clock >= start:
            return self._day_matches(day)
        return clock < end and self._day_matches(day - timedelta(days=1))

    def end_after(self, local: datetime) -> datetime:
        """Where the stretch of this window that covers `local` ends (wall clock)."""
        midnight = datetime.combine(local.date() + timedelta(days=1), time())
        if self.daily is None:
            return midnight
        start, end = self.daily
        if start < end or local.time() < end:
            return datetime.combine(local.date(), end)
        return datetime.combine(local.date() + timedelta(days=1), end)

    def describe(self) -> str:
        parts = []
        if self.days:
            parts.append(", ".join(_DAY_WORDS[d] for d in sorted(self.days)))
        if self.dates:
            parts.append(", ".join(d.isoformat() for d in sorted(self.dates)))
        if self.daily is not None:
            parts.append(f"{self.daily[0]:%H:%M}-{self.daily[1]:%H:%M}")
        what = " ".join(parts) or "always"
        return f"{what} ({self.reason})" if self.reason else what


@dataclass(frozen=True)
class EmergencyFreeze:
    """`/rollout freeze REASON`: every advance of every rollout stops until lifted."""

    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Frozen:
    """Why advances are stopped now, and until when (None: until someone lifts it)."""

    reason: str
    until: datetime | None
    emergency: bool = False
    by: str = ""


@dataclass(frozen=True)
class Policy:
    """One rollout's effective policy."""

    holders: Mapping[Role, tuple[str, ...]] = field(default_factory=dict)  # user or group ids
    two_person: TwoPerson | None = None
    windows: tuple[FreezeWindow, ...] = ()
    timezone: tzinfo = UTC

    @property
    def restricted(self) -> bool:
        """Whether any role is configured; with none, everyone may act."""
        return any(self.holders.values())

    def roles_allowed(self, step: str) -> tuple[Role, ...]:
        """The roles that may make `step` (a verb, or "force", "freeze")."""
        if step in ("start", "advance", "resume"):
            return (Role.LEAD, Role.OWNER)
        if step in ("force", "freeze", "unfreeze"):
            return (Role.LEAD,)
        if step == "rollback" and self.holders.get(Role.ROLLBACK):
            return (Role.ROLLBACK,)
        if step in ("pause", "rollback"):
            return (Role.OPERATOR, Role.LEAD, Role.OWNER, Role.ROLLBACK)
        return ()  # status, history, help: anyone

    def may(self, step: str, person: Person) -> bool:
        allowed = self.roles_allowed(step)
        if not allowed or not self.restricted:
            return True
        return bool(person.roles.intersection(allowed))

    def who_may(self, step: str) -> tuple[str, ...]:
        """The user and group ids holding a role that may make `step`."""
        found: list[str] = []
        for role in self.roles_allowed(step):
            found.extend(i for i in self.holders.get(role, ()) if i not in found)
        return tuple(found)

    def needs_two(self, step: str, to_percent: int) -> bool:
        return (
            self.two_person is not None
            and step in RAISING
            and to_percent >= self.two_person.from_percent
        )

    def frozen(self, now: datetime, emergency: EmergencyFreeze | None = None) -> Frozen | None:
        """Why advances stop at `now`, if they do: the emergency freeze first, then any
        freeze window, with the moment no window holds any more."""
        if emergency is not None:
            return Frozen(emergency.reason, None, emergency=True, by=emergency.by)
        local = now.astimezone(self.timezone).replace(tzinfo=None)
        end, chain = self._stretch(local)
        if not chain:
            return None
        reason = "; ".join(w.describe() for w in chain)
        until = None if end is None else end.replace(tzinfo=self.timezone).astimezone(UTC)
        return Frozen(reason, until)

    def window_end(self, local: datetime, horizon_days: int = 400) -> datetime | None:
        """The first wall-clock moment at or after `local` that no window covers, or None
        when the windows cover everything for `horizon_days` (a window that never ends)."""
        return self._stretch(local, horizon_days)[0]

    def _stretch(
        self, local: datetime, horizon_days: int = 400
    ) -> tuple[datetime | None, list[FreezeWindow]]:
        """Where the freeze holding at `local` ends, and the windows that hold it until
        then (a Friday night runs into the weekend: both are named)."""
        moment, limit = local, local + timedelta(days=horizon_days)
        chain: list[FreezeWindow] = []
        while moment < limit:
            covering = [w for w in self.windows if w.covers(moment)]
            if not covering:
                return moment, chain
            chain.extend(w for w in covering if w not in chain)
            moment = min(w.end_after(moment) for w in covering)
        return None, chain


def window_minute(now: datetime) -> datetime:
    """The whole minute `now` falls in. Freeze windows begin and end on whole minutes
    (HH:MM and midnights, in a zone whose offsets are whole minutes), so `Policy.frozen`
    answers the same for every moment of one minute."""
    return now.replace(second=0, microsecond=0)


def day_number(word: str) -> int | None:
    """`sat` or `saturday` (any case) → 5; None for anything else."""
    key = word.strip().lower()
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for index, name in enumerate(full):
        if key in (name, name[:3]):
            return index
    return None
