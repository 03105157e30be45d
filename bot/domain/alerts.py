"""What an Alertmanager notification means for rollouts. Pure: labels in, verdicts out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.domain.plans import TIER_TOPS, Tier
from bot.domain.rollout import RolloutSpec, RolloutStatus, State

MATCH_LABELS = ("rollout", "flag")
CANARY_MAX_PERCENT = TIER_TOPS[Tier.CANARY]


@dataclass(frozen=True)
class AlertFact:
    """One alert of a notification, as far as decisions go."""

    fingerprint: str
    status: str  # firing | resolved
    labels: Mapping[str, str]
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # meaningful once resolved

    @property
    def critical(self) -> bool:
        return self.labels.get("severity", "").lower() == "critical"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", self.fingerprint)


@dataclass(frozen=True)
class HoldPolicy:
    """Hold a rollout when a critical alert fires at or below `max_percent`."""

    enabled: bool = True
    max_percent: int = CANARY_MAX_PERCENT
    severity: str = "critical"


def notification_key(group_key: str, status: str, alerts: Iterable[AlertFact]) -> str:
    """The identity of one notification: an Alertmanager cluster sends the same one from
    several members, and repeats it every repeat_interval; both must act once.

    Each alert counts with its startsAt (and endsAt once resolved): an alert that fires
    again after it resolved keeps its fingerprint but starts anew, so it is a new
    notification, not a duplicate of the first one."""
    pairs = sorted(_alert_identity(a) for a in alerts)
    raw = "\n".join([group_key, status, *pairs])
    return hashlib.sha256(raw.encode()).hexdigest()


def _alert_identity(alert: AlertFact) -> str:
    ends = alert.ends_at if alert.status == "resolved" else None
    return f"{alert.fingerprint}:{alert.status}:{_instant(alert.starts_at)}:{_instant(ends)}"


def _instant(at: datetime | None) -> str:
    """A time as one string whatever offset it was written with."""
    if at is None:
        return ""
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.isoformat()


def group_id(group_key: str) -> str:
    """A fixed-length id for an alert group (groupKey may be long)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:40]


def match_rollout(
    common_labels: Mapping[str, str],
    alerts: Iterable[AlertFact],
    specs: Mapping[str, RolloutSpec],
) -> str | None:
    """The rollout an alert group is about: a `rollout` label naming it, or a `flag` label
    naming its flag; the group's common labels first, then each alert's."""
    by_flag = {spec.flag: name for name, spec in specs.items()}
    for labels in (common_labels, *(a.labels for a in alerts)):
        name = labels.get("rollout")
        if name in specs:
            return name
        flag = labels.get("flag")
        if flag is not None and flag in by_flag:
            return by_flag[flag]
    return None


def hold_reason(
    alerts: Iterable[AlertFact], status: RolloutStatus, policy: HoldPolicy
) -> str | None:
    """Why a rollout must hold for these alerts, or None: a firing alert of the policy's
    severity while the rollout progresses at the canary tier ("any critical alert")."""
    if not policy.enabled or status.state is not State.PROGRESSING:
        return None
    if status.percent > policy.max_percent:
        return None
    firing = [
        a
        for a in alerts
        if a.status == "firing" and a.labels.get("severity", "").lower() == policy.severity
    ]
    if not firing:
        return None
    names = ", ".join(sorted({a.name for a in firing})[:5])
    return f"{policy.severity} alert firing at {status.percent} %: {names}"
