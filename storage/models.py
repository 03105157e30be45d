"""Tables. Times are stored as naive UTC and read back as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class RolloutRow(Base):
    __tablename__ = "rollouts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    percent: Mapped[int] = mapped_column(Integer, default=0)
    stage_index: Mapped[int | None]
    stage_started_at: Mapped[datetime | None]
    hold_reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    thread_channel: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime]
    pending: Mapped[dict[str, Any] | None]  # a step waiting for a second person
    waiting: Mapped[dict[str, Any] | None]  # why a due automatic advance waits
    # The gates holding it (unknown): [{"gate", "outcome", "since" (ISO)}]; NULL when none.
    held_by: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    # A shadow run: the percentage still delivered while it runs; NULL for a live run.
    shadow_percent: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EventRow(Base):
    """The audit log: who did what, when, from which state to which."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # slash, button, automatic, socket
    verb: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    from_percent: Mapped[int]
    to_percent: Mapped[int]
    reason: Mapped[str] = mapped_column(Text, default="")
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int]
    gates: Mapped[dict[str, Any] | None]  # {gate: {outcome, value, threshold}} at that moment
    policy: Mapped[dict[str, Any] | None]  # asked_by, confirmed_by, window, freeze


class FreezeRow(Base):
    """The emergency freeze (`/rollout freeze REASON`): one row while it holds."""

    __tablename__ = "freezes"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # "all"
    reason: Mapped[str] = mapped_column(Text)
    by_user: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class ChangeStampRow(Base):
    """One row whose `stamp` goes up in every transaction that changes a rollout's status or
    the emergency freeze, whichever replica writes it: a reader that sees the same stamp
    twice knows that what `/rollout status` shows has not changed in between."""

    __tablename__ = "change_stamp"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger, default=0)


class OutboxRow(Base):
    """A Slack message to deliver. Delivered in id order per channel, retried with backoff."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    rollout: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None] = mapped_column(index=True)
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class TimerRow(Base):
    """Something due at a time: a soak end, a gate evaluation, a checkpoint, a page."""

    __tablename__ = "timers"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    due_at: Mapped[datetime] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]]
    lease_until: Mapped[datetime | None]
    token: Mapped[int] = mapped_column(Integer, default=0)
    # The replica running it (REPLICA_ID), from its claim until it finishes or fails; on
    # PostgreSQL its advisory lock says whether that replica still lives.
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ProcessedRequestRow(Base):
    """Slack deliveries already acted on, so retries and double clicks act once."""

    __tablename__ = "processed_requests"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    reply: Mapped[str] = mapped_column(Text, default="")


class GateStateRow(Base):
    """What the bot last knew of one gate of one rollout: outcome, since when, last value.

    Persisted (rather than asking Prometheus for the window on every tick) so that the
    sustain window survives a restart with any metrics source, including outcomes that
    Prometheus itself cannot report (it cannot say when it was unreachable).
    """

    __tablename__ = "gate_states"

    rollout: Mapped[str] = mapped_column(String(64), primary_key=True)
    gate: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    measured_at: Mapped[datetime]
    value: Mapped[float | None]
    threshold: Mapped[float | None]
    detail: Mapped[str] = mapped_column(Text, default="")
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)


class MessageRefRow(Base):
    """Where a posted message landed, by a name of ours, so later messages can reply in its
    thread (the daily summary's charts)."""

    __tablename__ = "message_refs"

    ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
