"""Incidents, their log, and the Alertmanager notifications already taken.

Reads and writes run inside the caller's transaction, like `storage.repository`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base

LIVE = ("open", "acknowledged", "silenced")


class IncidentRow(Base):
    """Something a person must look at, with its chain snapshot and escalation cursor."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # bot | alertmanager
    source_key: Mapped[str] = mapped_column(String(200), index=True)
    # The source key while the incident is live, NULL once resolved: one live incident
    # per alert group or per (rollout, kind), enforced by the database.
    live_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    rollout: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16), default="")
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    source_url: Mapped[str] = mapped_column(Text, default="", server_default="")
    chain: Mapped[dict[str, Any]]
    alerts: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer, default=0)
    next_due: Mapped[datetime | None]
    token: Mapped[int] = mapped_column(Integer, default=0)
    exhausted: Mapped[bool] = mapped_column(default=False)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]
    silenced_until: Mapped[datetime | None]
    # An alert group's labels (Alertmanager's groupLabels, else its commonLabels): what a
    # silence of the group matches. NULL for the bot's own incidents.
    silence_labels: Mapped[dict[str, Any] | None]
    silence_id: Mapped[str | None] = mapped_column(String(64))  # Alertmanager's, while it lasts
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    message_channel: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))


class IncidentLogRow(Base):
    """What happened to an incident, in order: opened, paged, acknowledged, …"""

    __tablename__ = "incident_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[datetime]
    verb: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), default="")
    level: Mapped[int | None]
    round: Mapped[int | None]
    detail: Mapped[str] = mapped_column(Text, default="")


class AlertNotificationRow(Base):
    """An Alertmanager notification already taken, by its identity (see
    `bot.domain.alerts.notification_key`)."""

    __tablename__ = "alert_notifications"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    group_id: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int | None]


class Incidents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, incident_id: int, *, lock: bool = False) -> IncidentRow | None:
        return await self.session.get(
            IncidentRow, incident_id, with_for_update=lock, populate_existing=True
        )

    async def live_by_key(self, source_key: str, *, lock: bool = False) -> IncidentRow | None:
        query = select(IncidentRow).where(IncidentRow.live_key == source_key)
        if lock:
            query = query.with_for_update()
        return (await self.session.scalars(query.execution_options(populate_existing=True))).first()

    async def live(self) -> Sequence[IncidentRow]:
        query = select(IncidentRow).where(IncidentRow.state.in_(LIVE)).order_by(IncidentRow.id)
        return (await self.session.scalars(query)).all()

    async def add(self, row: IncidentRow) -> bool:
        """Insert; False when another live incident holds the same key."""
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            return False
        return True

    async def save(self, incident_id: int, expected_token: int, values: dict[str, Any]) -> bool:
        """Write the cursor if nobody moved it since `expected_token`."""
        result = await self.session.execute(
            update(IncidentRow)
            .where(IncidentRow.id == incident_id, IncidentRow.token == expected_token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_message(self, incident_id: int, channel: str, ts: str, thread_ts: str) -> None:
        await self.session.execute(
            update(IncidentRow)
            .where(IncidentRow.id == incident_id)
            .values(message_channel=channel, message_ts=ts, thread_ts=thread_ts)
            .execution_options(synchronize_session=False)
        )

    async def set_silence(self, incident_id: int, silence_id: str | None) -> None:
        """Remember (or forget, with None) the Alertmanager silence held for the incident."""
        await self.session.execute(
            update(IncidentRow)
            .where(IncidentRow.id == incident_id)
            .values(silence_id=silence_id)
            .execution_options(synchronize_session=False)
        )

    def log(
        self,
        incident_id: int,
        at: datetime,
        verb: str,
        actor: str,
        *,
        target: str = "",
        level: int | None = None,
        round: int | None = None,
        detail: str = "",
    ) -> None:
        self.session.add(
            IncidentLogRow(
                incident_id=incident_id,
                at=at,
                verb=verb,
                actor=actor,
                target=target,
                level=level,
                round=round,
                detail=detail[:2000],
            )
        )

    async def gates_of(self, incident_id: int, verb: str) -> list[str]:
        """The details logged under `verb` for an incident, first first, each once (the
        gates it is about)."""
        query = (
            select(IncidentLogRow.detail)
            .where(IncidentLogRow.incident_id == incident_id, IncidentLogRow.verb == verb)
            .order_by(IncidentLogRow.id)
        )
        return list(dict.fromkeys((await self.session.scalars(query)).all()))

    async def logs(self, incident_id: int) -> Sequence[IncidentLogRow]:
        query = (
            select(IncidentLogRow)
            .where(IncidentLogRow.incident_id == incident_id)
            .order_by(IncidentLogRow.id)
        )
        return (await self.session.scalars(query)).all()

    async def responses_since(
        self, rollout: str, since: datetime, verbs: Sequence[str]
    ) -> Sequence[IncidentLogRow]:
        """What people did to this rollout's incidents since a moment (acks, resolves, …)."""
        query = (
            select(IncidentLogRow)
            .join(IncidentRow, IncidentRow.id == IncidentLogRow.incident_id)
            .where(IncidentRow.rollout == rollout)
            .where(IncidentLogRow.at >= since)
            .where(IncidentLogRow.verb.in_(verbs))
            .order_by(IncidentLogRow.id)
        )
        return (await self.session.scalars(query)).all()

    async def notification_seen(self, key: str) -> bool:
        return await self.session.get(AlertNotificationRow, key) is not None

    async def remember_notification(
        self, key: str, now: datetime, group_id: str, incident_id: int | None
    ) -> bool:
        """Record a notification as taken; False when it already was."""
        try:
            async with self.session.begin_nested():
                self.session.add(
                    AlertNotificationRow(
                        key=key, at=now, group_id=group_id, incident_id=incident_id
                    )
                )
        except IntegrityError:
            return False
        return True

    async def prune_notifications(self, before: datetime) -> int:
        """Forget Alertmanager notifications taken before `before` (duplicates of those
        arrive within minutes, repeats within `repeat_interval`)."""
        result = await self.session.execute(
            delete(AlertNotificationRow).where(AlertNotificationRow.at < before)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def link_notification(self, key: str, incident_id: int) -> None:
        await self.session.execute(
            update(AlertNotificationRow)
            .where(AlertNotificationRow.key == key)
            .values(incident_id=incident_id)
            .execution_options(synchronize_session=False)
        )
