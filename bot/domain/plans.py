"""Plans: the stages a rollout walks through, and the built-in plans from the field reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


class Tier(StrEnum):
    """Gate thresholds are tiered by how much traffic is exposed."""

    CANARY = "canary"  # up to 10 %
    PROGRESSIVE = "progressive"  # up to 50 %
    FINAL = "final"  # above 50 %


# The top percent of each tier; above the last one, FINAL. Stated here only.
TIER_TOPS: dict[Tier, int] = {Tier.CANARY: 10, Tier.PROGRESSIVE: 50}


def tier_for(percent: int) -> Tier:
    for tier, top in TIER_TOPS.items():
        if percent <= top:
            return tier
    return Tier.FINAL


@dataclass(frozen=True)
class Stage:
    percent: int
    soak: timedelta
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    percents: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "percents", tuple(s.percent for s in self.stages))

    def index_at_or_below(self, percent: int) -> int | None:
        """The last stage whose percent is at most `percent` (None below the first stage)."""
        found = None
        for i, stage in enumerate(self.stages):
            if stage.percent <= percent:
                found = i
        return found

    def next_index_above(self, percent: int) -> int | None:
        for i, stage in enumerate(self.stages):
            if stage.percent > percent:
                return i
        return None

    def flags_on_at(self, percent: int) -> tuple[str, ...]:
        """Feature flags switched on by every stage reached at `percent`."""
        on: list[str] = []
        for stage in self.stages:
            if stage.percent <= percent:
                on.extend(f for f in stage.flags if f not in on)
        return tuple(on)

    @property
    def total_soak(self) -> timedelta:
        return sum((s.soak for s in self.stages), timedelta())


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


BUILTIN_PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan(
            "safe",
            tuple(
                Stage(p, _h(s))
                for p, s in ((5, 24), (10, 24), (25, 24), (50, 24), (75, 24), (100, 48))
            ),
            "7 days: 24 h soaks, 48 h watch at 100 %",
        ),
        Plan(
            "six-day",
            tuple(
                Stage(p, _h(s))
                for p, s in ((5, 12), (10, 12), (25, 24), (50, 24), (75, 24), (100, 48))
            ),
            "6 days: 5 % and 10 % on day one (12 h soak at 5 %)",
        ),
        Plan(
            "fast",
            tuple(Stage(p, _h(s)) for p, s in ((10, 6), (25, 6), (50, 12), (100, 48))),
            "3 days: 10 → 25 → 50 → 100",
        ),
        Plan(
            "instant",
            (Stage(100, _h(1)),),
            "emergencies: straight to 100 %, watched for 1 h",
        ),
    )
}
