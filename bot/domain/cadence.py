"""When checkpoints are due: a cadence of (until, every) rules after a change of percentage.

The default, from the field reports: every 15 min for the first 6 h, hourly until 24 h,
every 3 h after. Steps are aligned to the start of their segment, so after a change at
10:00 the checkpoints fall at 10:15, 10:30, … 16:00, then 17:00, … 10:00 the next day,
then 13:00, 16:00, …
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Rule:
    every: timedelta
    until: timedelta | None = None  # measured from the change; None: for ever


DEFAULT_CADENCE = (
    Rule(timedelta(minutes=15), timedelta(hours=6)),
    Rule(timedelta(hours=1), timedelta(hours=24)),
    Rule(timedelta(hours=3)),
)


def next_checkpoint(
    changed_at: datetime, after: datetime, rules: Sequence[Rule] = DEFAULT_CADENCE
) -> datetime | None:
    """The first checkpoint strictly after `after`, or None when the cadence has ended."""
    elapsed = after - changed_at
    start = timedelta(0)
    for rule in rules:
        end = rule.until
        if end is not None and elapsed >= end:
            start = end
            continue
        since_start = max(elapsed - start, timedelta(0))
        steps = since_start // rule.every + 1
        offset = start + steps * rule.every
        if end is None or offset <= end:
            return changed_at + offset
        start = end
    return None


def checkpoints_between(
    changed_at: datetime,
    start: datetime,
    end: datetime,
    rules: Sequence[Rule] = DEFAULT_CADENCE,
) -> list[datetime]:
    """Every checkpoint in (start, end]: what a bot that never stopped would post."""
    found = []
    moment = next_checkpoint(changed_at, start, rules)
    while moment is not None and moment <= end:
        found.append(moment)
        moment = next_checkpoint(changed_at, moment, rules)
    return found
