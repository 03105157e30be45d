"""Alertmanager notifications taken in: the payload model (version 4) and the intake that
turns a notification into incidents, and a critical alert at the canary tier into a pause.

An alert group (groupKey) is one incident. The same notification sent by several members
of an Alertmanager cluster, or repeated, acts once (identity: groupKey + status + sorted
fingerprint:status pairs, each with its alert's startsAt, and endsAt once resolved); an
alert that resolves and fires again starts anew, so it is taken again. Alerts go to a
rollout by a `rollout` or `flag` label, else to the channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.alerts import (
    AlertFact,
    HoldPolicy,
    group_id,
    hold_reason,
    match_rollout,
    notification_key,
)
from bot.domain.rollout import Pause
from bot.services.incidents import IncidentService, NewIncident
from bot.services.rollouts import AUTOMATIC, Actor, RolloutService
from storage.incidents import Incidents

log = logging.getLogger(__name__)

SOURCE = "alertmanager"
MAX_ALERTS = 10_000
Labels = dict[str, str]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = {}
    startsAt: datetime  # Alertmanager's field names
    endsAt: datetime  # (0001-01-01T00:00:00Z while firing)
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=64)

    def fact(self) -> AlertFact:
        return AlertFact(self.fingerprint, self.status, self.labels, self.startsAt, self.endsAt)


class WebhookPayload(_Model):
    """Alertmanager's webhook body, version 4. Unknown fields (notification_reason,
    routeLabels, …) are accepted and ignored."""

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=8192)
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: Labels
    commonLabels: Labels
    commonAnnotations: Labels
    externalURL: str
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_ALERTS)


@dataclass(frozen=True)
class Taken:
    outcome: str  # opened, updated, resolved, duplicate, unchanged, no incident
    incident: int | None = None
    held: str | None = None  # the rollout paused, if any


class AlertIntake:
    """Turns a validated notification into incidents (and holds)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        incidents: IncidentService,
        rollouts: RolloutService,
        policy: HoldPolicy,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.incidents = incidents
        self.rollouts = rollouts
        self.policy = policy
        self.in_flight = 0

    async def take(self, payload: WebhookPayload) -> Taken:
        facts = [a.fact() for a in payload.alerts]
        key = notification_key(payload.groupKey, payload.status, facts)
        rollout = match_rollout(payload.commonLabels, facts, self.rollouts.specs)
        async with self.sessions() as session:
            seen = await Incidents(session).notification_seen(key)
        if seen:
            return Taken("duplicate")
        held = await self._hold(rollout, facts) if payload.status == "firing" else None
        taken = await self._record(payload, key, rollout)
        if taken.outcome != "duplicate":
            self.incidents.notify()
        return Taken(taken.outcome, taken.incident, held)

    async def _hold(self, rollout: str | None, facts: list[AlertFact]) -> str | None:
        """Pause the rollout first: if the bot stops before the incident is written,
        Alertmanager sends again, the pause is then refused as done, and the incident opens."""
        if rollout is None:
            return None
        statuses = await self.rollouts.statuses()
        reason = hold_reason(facts, statuses[rollout], self.policy)
        if reason is None:
            return None
        outcome = await self.rollouts.act(rollout, Pause(reason), Actor(AUTOMATIC, SOURCE))
        log.warning("%s: %s (%s)", rollout, reason, outcome.text.splitlines()[0])
        return rollout if outcome.ok else None

    async def _record(self, payload: WebhookPayload, key: str, rollout: str | None) -> Taken:
        now = self.clock.now()
        group = group_id(payload.groupKey)
        alerts = {a.fingerprint: _alert_json(a) for a in payload.alerts}
        async with self.sessions() as session, session.begin():
            incidents = Incidents(session)
            if not await incidents.remember_notification(key, now, group, None):
                return Taken("duplicate")
            row = await incidents.live_by_key(f"am:{group}", lock=True)
            if payload.status == "firing":
                if row is None:
                    new = _new_incident(payload, group, rollout, alerts)
                    row, opened = await self.incidents.open(session, new, now)
                    outcome = "opened" if opened else "updated"
                    if not opened:
                        await self.incidents.update_alerts(session, row, alerts, now)
                else:
                    changed = await self.incidents.update_alerts(session, row, alerts, now)
                    outcome = "updated" if changed else "unchanged"
            elif row is None:
                return Taken("no incident")
            else:
                await self.incidents.update_alerts(session, row, alerts, now)
                await self.incidents.resolve_in(session, row, SOURCE, now)
                outcome = "resolved"
            await incidents.link_notification(key, row.id)
        return Taken(outcome, row.id)


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "name": alert.labels.get("alertname", alert.fingerprint),
        "summary": alert.annotations.get("summary", "")[:300],
        "severity": alert.labels.get("severity", ""),
        "startsAt": alert.startsAt.isoformat(),
    }


def _new_incident(
    payload: WebhookPayload, group: str, rollout: str | None, alerts: dict[str, Any]
) -> NewIncident:
    names = sorted({a.labels.get("alertname", "alert") for a in payload.alerts})
    common = payload.commonAnnotations
    summaries = {a.annotations.get("summary", "") for a in payload.alerts}
    summary = common.get("summary") or (summaries.pop() if len(summaries) == 1 else "")
    summary = summary or ", ".join(names[:5]) + " firing"
    return NewIncident(
        source=SOURCE,
        source_key=f"am:{group}",
        kind="alert",
        summary=summary,
        rollout=rollout,
        detail=common.get("description", ""),
        source_url=payload.alerts[0].generatorURL or payload.externalURL,
        severity=payload.commonLabels.get("severity", ""),
        alerts=alerts,
        # What a silence of this group matches: the labels it is grouped by, so that an
        # alert joining the group later is silenced too.
        silence_labels=dict(payload.groupLabels or payload.commonLabels),
    )
