"""Silences that Alertmanager knows: **Silence 1h** (or `/rollout silence INCIDENT 2h`)
silences the incident in the bot (no pages until it ends) and, with `alertmanager.url`
configured, creates a silence in Alertmanager matching the incident's alert group, so that
Alertmanager stops notifying too. **Unsilence** ends both.

The bot's own silence comes first and always stands: Alertmanager being unreachable, or
refusing the silence, is said to the person who asked (and nothing else fails). The silence
id and its end are said in the incident's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta

from bot.alertmanager_api import AlertmanagerApi, silence_body
from bot.domain import escalation as esc
from bot.errors import AlertmanagerFailed
from bot.render import incident_blocks as render
from bot.services.incidents import Answer, IncidentService, view_of

log = logging.getLogger(__name__)

Names = Callable[[Iterable[str]], Awaitable[Mapping[str, str]]]
NOT_CONFIGURED = (
    "Alertmanager was not told (no `alertmanager.url` in the config), so it keeps notifying."
)


class Silences:
    def __init__(
        self,
        incidents: IncidentService,
        alertmanager: AlertmanagerApi | None,
        names: Names | None = None,
    ) -> None:
        self.incidents = incidents
        self.alertmanager = alertmanager
        self.names = names

    async def silence(
        self,
        incident_id: int,
        user: str,
        duration: timedelta = esc.SILENCE_DEFAULT,
        reason: str = "",
    ) -> Answer:
        answer = await self.incidents.silence(incident_id, user, duration)
        if not answer.ok:
            return answer
        return _with(answer, await self._silence_in_alertmanager(incident_id, user, reason))

    async def unsilence(self, incident_id: int, user: str) -> Answer:
        answer = await self.incidents.unsilence(incident_id, user)
        if not answer.ok:
            return answer
        return _with(answer, await self._expire_in_alertmanager(incident_id, user))

    async def _silence_in_alertmanager(self, incident_id: int, user: str, reason: str) -> str:
        if self.alertmanager is None:
            return NOT_CONFIGURED
        row = await self.incidents.get(incident_id)
        if row is None or row.silenced_until is None:
            return ""
        if not row.silence_labels:
            return "No Alertmanager alert group belongs to this incident: nothing to silence there."
        labels = {str(k): str(v) for k, v in row.silence_labels.items()}
        comment = reason.strip() or f"Silenced from Slack: incident #{row.id}, {row.summary}"
        body = silence_body(
            labels,
            self.incidents.clock.now(),
            row.silenced_until,
            await self._name(user),
            comment[:1000],
        )
        try:
            silence_id = await self.alertmanager.create_silence(body)
        except AlertmanagerFailed as exc:
            log.warning("incident %s: no silence in Alertmanager: %s", incident_id, exc.reason)
            return (
                f"Alertmanager was not told: {exc.reason}. It keeps notifying; silence the "
                "alert group there by hand, or try again."
            )
        message = render.silenced_in_alertmanager(
            view_of(row), user, silence_id, row.silenced_until, labels, reason.strip()
        )
        await self.incidents.note_silence(incident_id, user, silence_id, message)
        return f"Alertmanager silence `{silence_id}` matches its alert group until the same end."

    async def _expire_in_alertmanager(self, incident_id: int, user: str) -> str:
        if self.alertmanager is None:
            return NOT_CONFIGURED
        row = await self.incidents.get(incident_id)
        if row is None or not row.silence_id:
            return ""
        try:
            await self.alertmanager.expire_silence(row.silence_id)
        except AlertmanagerFailed as exc:
            log.warning("incident %s: silence not expired: %s", incident_id, exc.reason)
            return (
                f"Alertmanager silence `{row.silence_id}` is still there: {exc.reason}. "
                "Expire it there by hand, or try again."
            )
        message = render.unsilenced_in_alertmanager(view_of(row), user, row.silence_id)
        await self.incidents.note_silence(incident_id, user, None, message)
        return f"Alertmanager silence `{row.silence_id}` is expired."

    async def _name(self, user: str) -> str:
        """`createdBy`: the person's Slack name, or their ID when Slack does not say."""
        if self.names is None:
            return user
        try:
            known = await self.names([user])
        except Exception:  # a name is nice to have; the silence is what matters
            log.exception("could not look up the name of %s", user)
            return user
        return known.get(user) or user


def _with(answer: Answer, more: str) -> Answer:
    return replace(answer, text=f"{answer.text} {more}".strip()) if more else answer
