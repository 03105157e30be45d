"""What a gate's recorded history says against each tier's threshold: the distribution of
its values (p50, p95, max), how often it was red, its nearest miss, and how much of the
period has no data. Pure; every value is judged by `assess.assess`, as live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain.assess import GateRule, Measurement, assess
from bot.domain.gates import Outcome
from bot.domain.plans import Tier
from bot.domain.rehearsal import History


@dataclass(frozen=True)
class TierStats:
    tier: Tier
    threshold: float | None
    p50: float | None
    p95: float | None
    worst: float | None  # the max against `fail_above`, the min against `fail_below`
    red: int  # samples red at this tier
    episodes: int  # stretches of consecutive red samples
    measured: int  # samples with a value
    nearest_miss: tuple[datetime, float] | None  # the green value closest to the threshold

    @property
    def red_share(self) -> float:
        return self.red / self.measured if self.measured else 0.0


@dataclass(frozen=True)
class GateStats:
    name: str
    fail_above: bool
    expected: int  # samples the period holds at the gate's interval
    measured: int
    source_down: int  # samples in stretches the source could not answer
    first_sample: datetime | None  # where the recorded history starts
    tiers: tuple[TierStats, ...]

    @property
    def no_data_share(self) -> float:
        """The share of the period without a value (down stretches included)."""
        if not self.expected:
            return 0.0
        return max(0, self.expected - self.measured) / self.expected


def gate_stats(history: History, start: datetime, end: datetime) -> GateStats:
    rule = history.rule
    expected = int((end - start) / rule.interval) + 1
    samples = [
        (t, [v for v in values if not math.isnan(v)])
        for t, values in zip(history.times, history.values, strict=True)
        if start <= t <= end
    ]
    samples = [(t, values) for t, values in samples if values]
    down = sum((_overlap(a, b, start, end) for a, b, _ in history.errors), timedelta(0))
    # Tiers with the same thresholds judge every sample alike: judged once, shown for each.
    judged: dict[tuple[float | None, float | None], TierStats] = {}
    tiers = []
    for tier in Tier:
        key = (_at(rule.fail_above, tier), _at(rule.fail_below, tier))
        if key not in judged:
            judged[key] = _tier_stats(rule, tier, samples)
        tiers.append(replace(judged[key], tier=tier))
    return GateStats(
        name=rule.name,
        fail_above=rule.fail_above is not None,
        expected=expected,
        measured=len(samples),
        source_down=int(down / rule.interval),
        first_sample=samples[0][0] if samples else None,
        tiers=tuple(tiers),
    )


def _at(table: Mapping[Tier, float] | None, tier: Tier) -> float | None:
    return None if table is None else table.get(tier)


def _overlap(a: datetime, b: datetime, start: datetime, end: datetime) -> timedelta:
    return max(timedelta(0), min(b, end) - max(a, start))


def _tier_stats(
    rule: GateRule, tier: Tier, samples: list[tuple[datetime, list[float]]]
) -> TierStats:
    threshold = rule.threshold_at(tier)
    worst_values: list[float] = []
    red = episodes = 0
    was_red = False
    miss: tuple[datetime, float] | None = None
    above = rule.fail_above is not None
    for at, values in samples:
        judged = assess(rule, tier, Measurement(tuple(values)))
        if judged.value is None:
            continue
        worst_values.append(judged.value)
        is_red = judged.outcome is Outcome.FAIL
        if is_red:
            red += 1
            episodes += 0 if was_red else 1
        elif threshold is not None and (
            miss is None or (judged.value > miss[1] if above else judged.value < miss[1])
        ):
            miss = (at, judged.value)
        was_red = is_red
    ordered = sorted(worst_values)
    return TierStats(
        tier=tier,
        threshold=threshold,
        p50=_quantile(ordered, 0.50),
        p95=_quantile(ordered, 0.95),
        worst=(ordered[-1] if above else ordered[0]) if ordered else None,
        red=red,
        episodes=episodes,
        measured=len(ordered),
        nearest_miss=miss,
    )


def _quantile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank quantile of sorted values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
