"""`POST /alertmanager`: Alertmanager's webhook (payload version 4) in, incidents out.

An alert group (groupKey) is one incident. The same notification sent by several members
of an Alertmanager cluster, or repeated, acts once (identity: groupKey + status + sorted
fingerprint:status pairs, each with its alert's startsAt, and endsAt once resolved); an
alert that resolves and fires again starts anew, so it is taken again. Alerts go to a
rollout by a `rollout` or `flag` label, else to the channel. A critical alert on a rollout
progressing at the canary tier pauses it.

Answers: 2xx taken (or already taken); 400 malformed, with the reason; 401 bad
credentials; 413 too big; 503 when the bot cannot take it now, since Alertmanager
retries 5xx only (never 429).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.config import AlertmanagerConfig
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

MAX_BODY = 4 * 1024 * 1024
MAX_ALERTS = 10_000
MAX_IN_FLIGHT = 64  # notifications being taken at once; more get 503 and a retry
SOURCE = "alertmanager"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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
        incidents: IncidentService,
        rollouts: RolloutService,
        policy: HoldPolicy,
    ) -> None:
        self.incidents = incidents
        self.rollouts = rollouts
        self.policy = policy
        self.in_flight = 0

    async def take(self, payload: WebhookPayload) -> Taken:
        facts = [a.fact() for a in payload.alerts]
        key = notification_key(payload.groupKey, payload.status, facts)
        rollout = match_rollout(payload.commonLabels, facts, self.rollouts.specs)
        async with self.incidents.sessions() as session:
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
        now = self.incidents.clock.now()
        group = group_id(payload.groupKey)
        alerts = {a.fingerprint: _alert_json(a) for a in payload.alerts}
        async with self.incidents.sessions() as session, session.begin():
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
    detail_parts = []
    if common.get("description"):
        detail_parts.append(common["description"])
    url = payload.alerts[0].generatorURL or payload.externalURL
    if url:
        detail_parts.append(f"<{url}|Source>")
    return NewIncident(
        source=SOURCE,
        source_key=f"am:{group}",
        kind="alert",
        summary=summary,
        rollout=rollout,
        detail="\n".join(detail_parts),
        severity=payload.commonLabels.get("severity", ""),
        alerts=alerts,
    )


# --- HTTP -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointAuth:
    """Optional credentials on the endpoint: a bearer token, HTTP basic auth, or none."""

    bearer_token: str | None = None
    basic: tuple[str, str] | None = None

    @classmethod
    def from_config(cls, config: AlertmanagerConfig, token_override: str = "") -> EndpointAuth:
        basic = None
        if config.basic_auth is not None:
            basic = (config.basic_auth.username, config.basic_auth.password)
        return cls(token_override or config.bearer_token, basic)

    def allows(self, header: str) -> bool:
        if self.bearer_token is None and self.basic is None:
            return True
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if self.bearer_token is not None and scheme == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.bearer_token.encode())
        if self.basic is not None and scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            expected = f"{self.basic[0]}:{self.basic[1]}"
            return hmac.compare_digest(decoded.encode(), expected.encode())
        return False


def alertmanager_handler(intake: AlertIntake, auth: EndpointAuth) -> Handler:
    async def receive(request: web.Request) -> web.Response:
        if not auth.allows(request.headers.get("Authorization", "")):
            log.warning("refusing an Alertmanager notification: bad or missing credentials")
            return _answer(401, "bad or missing credentials", {"WWW-Authenticate": "Bearer"})
        if intake.in_flight >= MAX_IN_FLIGHT:  # before reading: a busy bot reads nothing
            return _answer(503, "busy: try again", {"Retry-After": "1"})
        intake.in_flight += 1  # counted from here: bodies being read are work in flight too
        try:
            body, problem = await _read_body(request)
            if problem is not None:
                log.warning("refusing an Alertmanager notification: %s", problem)
                return _answer(413, problem)
            payload, problem = parse_payload(body)
            if payload is None:
                log.warning("refusing an Alertmanager notification: %s", problem)
                return _answer(400, problem or "malformed")
            taken = await intake.take(payload)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("cannot take an Alertmanager notification now: %s", exc)
            return _answer(503, "the database is busy: try again", {"Retry-After": "1"})
        except Exception:
            log.exception("failed to take an Alertmanager notification")
            return _answer(503, "could not take it now: try again", {"Retry-After": "1"})
        finally:
            intake.in_flight -= 1
        return web.json_response(
            {"status": taken.outcome, "incident": taken.incident, "held": taken.held}
        )

    return receive


def parse_payload(body: bytes) -> tuple[WebhookPayload | None, str | None]:
    """The validated payload, or None and why not (in words for the log and the reply)."""
    if not body:
        return None, "empty body"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(data, dict):
        return None, f"the payload must be a JSON object, not {type(data).__name__}"
    if data.get("version") != "4":
        return None, f'unsupported payload version {data.get("version")!r}; expected "4"'
    try:
        return WebhookPayload.model_validate(data), None
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()[:5]
        ]
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        return None, "invalid payload: " + "; ".join(reasons) + more


async def _read_body(request: web.Request) -> tuple[bytes, str | None]:
    too_big = f"body larger than {MAX_BODY} bytes"
    if request.content_length is not None and request.content_length > MAX_BODY:
        return b"", too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return b"", too_big
        chunks.append(chunk)
    return b"".join(chunks), None


def _answer(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
