"""Reads and writes, each inside the caller's transaction (`async with session.begin()`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.claims import OUTBOX, TIMER, Claims, item_name
from storage.models import (
    ChangeStampRow,
    EventRow,
    FreezeRow,
    GateStateRow,
    MessageRefRow,
    OutboxRow,
    ProcessedRequestRow,
    RolloutRow,
    TimerRow,
    UTCDateTime,
)

FREEZE_ALL = "all"
CHANGE_STAMP_ID = 1
EVERY_ROLLOUT = "*"  # the audit log's rollout for what applies to every one (the freeze)


def _later(at: Any, lease_until: Any) -> ColumnElement[datetime]:
    """The later of a due time and a lease's end (the due time when there is no lease)."""
    return type_coerce(
        case((lease_until > at, lease_until), else_=at), UTCDateTime()
    )


@dataclass(frozen=True)
class DueTimer:
    """A timer claimed by one scheduler loop. `token` proves the claim."""

    key: str
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    token: int


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- rollouts ---------------------------------------------------------------------

    async def ensure_rollouts(self, names: Iterable[str], now: datetime) -> None:
        """A pending row for each name that has none. Replicas starting together may each
        run this at once: a row another one just wrote is left as it is."""
        rows = [
            {
                "name": name,
                "state": "pending",
                "percent": 0,
                "hold_reason": "",
                "version": 0,
                "updated_at": now,
            }
            for name in names
        ]
        if rows:
            await self.session.execute(self._insert_new(RolloutRow, rows))
            await self.changed()

    async def rollout(self, name: str) -> RolloutRow | None:
        return await self.session.get(RolloutRow, name)

    async def rollouts(self, names: Iterable[str] | None = None) -> Sequence[RolloutRow]:
        query = select(RolloutRow).order_by(RolloutRow.name)
        if names is not None:
            query = query.where(RolloutRow.name.in_(list(names)))
        return (await self.session.scalars(query)).all()

    async def save_rollout(self, name: str, expected_version: int, values: dict[str, Any]) -> bool:
        """Write a new status if nobody else has since `expected_version`. False if they have."""
        result = await self.session.execute(
            update(RolloutRow)
            .where(RolloutRow.name == name, RolloutRow.version == expected_version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await self.changed()
        return True

    async def set_thread(self, name: str, channel: str, ts: str) -> None:
        await self.session.execute(
            update(RolloutRow)
            .where(RolloutRow.name == name)
            .values(thread_channel=channel, thread_ts=ts)
            .execution_options(synchronize_session=False)
        )

    # --- the emergency freeze --------------------------------------------------------

    async def freeze(self) -> FreezeRow | None:
        return await self.session.get(FreezeRow, FREEZE_ALL)

    async def set_freeze(self, reason: str, by: str, now: datetime) -> bool:
        """Freeze every rollout; False when a freeze already holds (another writer won)."""
        if await self.freeze() is not None:
            return False
        self.session.add(FreezeRow(scope=FREEZE_ALL, reason=reason, by_user=by, at=now))
        await self.session.flush()
        await self.changed()
        return True

    async def lift_freeze(self) -> bool:
        result = await self.session.execute(delete(FreezeRow).where(FreezeRow.scope == FREEZE_ALL))
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await self.changed()
        return True

    # --- the change stamp -------------------------------------------------------------

    async def changed(self) -> None:
        """Raise the change stamp in this transaction: a rollout's status or the freeze
        changed (`storage.change_stamp` reads it)."""
        raise_stamp = (
            update(ChangeStampRow)
            .where(ChangeStampRow.id == CHANGE_STAMP_ID)
            .values(stamp=ChangeStampRow.stamp + 1)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(raise_stamp)
        if not result.rowcount:  # type: ignore[attr-defined]  # a schema without 0008's row
            await self.session.execute(
                self._insert_new(ChangeStampRow, [{"id": CHANGE_STAMP_ID, "stamp": 0}])
            )
            await self.session.execute(raise_stamp)

    async def change_stamp(self) -> int:
        stamp = await self.session.scalar(
            select(ChangeStampRow.stamp).where(ChangeStampRow.id == CHANGE_STAMP_ID)
        )
        return int(stamp or 0)

    # --- audit events -----------------------------------------------------------------

    def add_event(self, event: EventRow) -> None:
        self.session.add(event)

    async def events(
        self, rollout: str, limit: int = 20, *, every_rollout: bool = False
    ) -> Sequence[EventRow]:
        """The rollout's latest events, oldest first; with `every_rollout`, those that
        concern every rollout too (the emergency freeze)."""
        scopes = [rollout, EVERY_ROLLOUT] if every_rollout else [rollout]
        query = (
            select(EventRow)
            .where(EventRow.rollout.in_(scopes))
            .order_by(EventRow.id.desc())
            .limit(limit)
        )
        return list(reversed((await self.session.scalars(query)).all()))

    async def events_since(self, rollout: str, since: datetime) -> Sequence[EventRow]:
        query = (
            select(EventRow)
            .where(EventRow.rollout == rollout, EventRow.at >= since)
            .order_by(EventRow.id)
        )
        return (await self.session.scalars(query)).all()

    # --- outbox -----------------------------------------------------------------------

    def enqueue(
        self,
        channel: str,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        rollout: str | None = None,
    ) -> None:
        self.session.add(
            OutboxRow(
                channel=channel,
                kind=kind,
                rollout=rollout,
                payload=payload,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
                last_error="",
            )
        )

    async def claim_outbox_heads(
        self, now: datetime, lease: timedelta, limit: int = 20, claims: Claims | None = None
    ) -> list[OutboxRow]:
        """The oldest pending message of each channel that is due and not leased to another
        worker; each is leased to the caller. A channel whose head waits, waits whole.

        With `claims` that take over (PostgreSQL, or a SQLite file this bot alone serves), a
        head whose lease still runs is the caller's too when the bot that leased it died
        (its advisory lock is free; on SQLite, it is not this bot's); each head taken is
        held in `claims` until the caller releases it."""
        pending = OutboxRow.delivered_at.is_(None) & OutboxRow.failed_at.is_(None)
        heads = (
            select(func.min(OutboxRow.id)).where(pending).group_by(OutboxRow.channel)
        ).scalar_subquery()
        query = select(OutboxRow).where(OutboxRow.id.in_(heads), OutboxRow.next_attempt_at <= now)
        leased = case((OutboxRow.lease_until >= now, 1), else_=0)
        if claims is None or not claims.takes_over:
            query = query.where(leased == 0)
        else:  # leased ones last: most are in flight on a live replica and stay its own
            mine = [int(key) for key in claims.holding(OUTBOX)]
            if mine:
                query = query.where(OutboxRow.id.not_in(mine))
        rows = (
            await self.session.scalars(
                query.order_by(leased, OutboxRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=OutboxRow)  # nothing on SQLite
            )
        ).all()
        claimed = []
        for row in rows:
            item = item_name(OUTBOX, row.id)
            if claims is not None and not await claims.hold(item, now):
                continue
            result = await self.session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row.id,
                    OutboxRow.lease_until.is_not_distinct_from(row.lease_until),
                    pending,
                )
                .values(lease_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                claimed.append(row)
            elif claims is not None:
                await claims.release(item)
        return claimed

    async def outbox_done(self, message_id: int, now: datetime) -> None:
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id)
            .values(delivered_at=now, lease_until=None, attempts=OutboxRow.attempts + 1)
        )

    async def outbox_retry(self, message_id: int, at: datetime, error: str) -> None:
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id)
            .values(
                next_attempt_at=at,
                lease_until=None,
                last_error=error[:2000],
                attempts=OutboxRow.attempts + 1,
            )
        )

    async def outbox_give_up(self, message_id: int, now: datetime, error: str) -> None:
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id)
            .values(
                failed_at=now,
                lease_until=None,
                last_error=error[:2000],
                attempts=OutboxRow.attempts + 1,
            )
        )

    async def outbox_depth(self) -> int:
        query = select(func.count()).where(
            OutboxRow.delivered_at.is_(None), OutboxRow.failed_at.is_(None)
        )
        return int((await self.session.scalar(query)) or 0)

    async def outbox_next_due(self) -> datetime | None:
        """When a pending message may next be claimed: its next attempt, or the end of
        its lease when one runs past that (a delivery in flight, here or elsewhere)."""
        query = select(
            func.min(_later(OutboxRow.next_attempt_at, OutboxRow.lease_until))
        ).where(OutboxRow.delivered_at.is_(None), OutboxRow.failed_at.is_(None))
        return await self.session.scalar(query)

    # --- timers -----------------------------------------------------------------------

    async def set_timer(
        self, key: str, kind: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> None:
        row = await self.session.get(TimerRow, key)
        if row is None:
            self.session.add(
                TimerRow(key=key, kind=kind, due_at=due_at, payload=payload or {}, token=0)
            )
        else:
            row.kind, row.due_at, row.payload = kind, due_at, payload or {}
            row.lease_until, row.token, row.claimed_by = None, row.token + 1, None

    async def ensure_timer(
        self, key: str, kind: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> bool:
        """Set a timer unless one is set under `key` (by this bot, or by a replica at the same
        moment). True if this call set it."""
        row = {"key": key, "kind": kind, "due_at": due_at, "payload": payload or {}, "token": 0}
        result = await self.session.execute(self._insert_new(TimerRow, [row]))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def move_timer(self, key: str, due_at: datetime, now: datetime) -> bool:
        """Move a timer that is not due yet to `due_at`. A due one is left alone: it runs
        (or is running) as it is. True if it moved."""
        result = await self.session.execute(
            update(TimerRow)
            .where(TimerRow.key == key, TimerRow.due_at > now, TimerRow.due_at != due_at)
            .values(due_at=due_at)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def expedite_timer(
        self, key: str, kind: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> None:
        """Make a timer due at `due_at` at the latest (set it if there is none). A claim of
        it in progress keeps its lease, but its token moves on, so the claimer's
        `reschedule_timer` keeps this due time rather than overwrite it."""
        if await self.ensure_timer(key, kind, due_at, payload):
            return
        await self.session.execute(
            update(TimerRow)
            .where(TimerRow.key == key)
            .values(
                due_at=case(
                    (TimerRow.due_at > due_at, literal(due_at, TimerRow.due_at.type)),
                    else_=TimerRow.due_at,
                ),
                token=TimerRow.token + 1,
            )
            .execution_options(synchronize_session=False)
        )

    async def reschedule_timer(
        self, key: str, token: int, due_at: datetime | None, kind: str
    ) -> None:
        """The claimer of a timer (with `token`) sets its next due time, or drops it with
        None. If it was expedited meanwhile (the token moved on), the earlier time wins and
        it is not dropped."""
        row = await self.session.get(TimerRow, key, with_for_update=True, populate_existing=True)
        if row is None:
            if due_at is not None:
                self.session.add(TimerRow(key=key, kind=kind, due_at=due_at, payload={}, token=0))
            return
        if row.token == token:
            if due_at is None:
                await self.session.delete(row)
                return
            row.due_at = due_at
        elif due_at is not None:
            row.due_at = min(row.due_at, due_at)
        row.lease_until, row.token = None, row.token + 1

    async def drop_timers(self, kind: str, *, keep: str) -> None:
        """Drop every timer of `kind` but the one under `keep`."""
        await self.session.execute(
            delete(TimerRow).where(TimerRow.kind == kind, TimerRow.key != keep)
        )

    async def cancel_timer(self, key: str) -> None:
        row = await self.session.get(TimerRow, key)
        if row is not None:
            await self.session.delete(row)

    async def claim_due_timers(
        self,
        now: datetime,
        lease: timedelta,
        leases_by_kind: Mapping[str, timedelta] | None = None,
        limit: int = 100,
        claims: Claims | None = None,
        after: Mapping[str, Sequence[str]] | None = None,
    ) -> list[DueTimer]:
        """Due timers not leased to another loop; each is leased to the caller (for
        `leases_by_kind[kind]`, else `lease`), and its token moves on, so only the claimer
        may finish it.

        With `claims` that take over (PostgreSQL, or a SQLite file this bot alone serves), a
        timer another bot claimed is the caller's too when that bot died (its advisory lock
        is free; on SQLite, it is not this bot's), lease or not; a lease left by
        a handler that failed (`claimed_by` cleared) still spaces out its retries. Each
        timer taken is held in `claims` until the caller releases it.

        `after` orders kinds: a timer of kind K is not claimed while a timer of one of the
        kinds `after[K]` is due, unless that one failed and waits out its lease (so a
        failing handler never holds the others back for good)."""
        free = (TimerRow.lease_until.is_(None)) | (TimerRow.lease_until < now)
        query = select(TimerRow).where(TimerRow.due_at <= now)
        for kind, earlier_kinds in (after or {}).items():
            earlier = aliased(TimerRow)
            failed = (
                earlier.claimed_by.is_(None)
                & earlier.lease_until.is_not(None)
                & (earlier.lease_until >= now)
            )
            waiting = exists().where(
                earlier.kind.in_(list(earlier_kinds)), earlier.due_at <= now, ~failed
            )
            query = query.where(~((TimerRow.kind == kind) & waiting))
        if claims is None or not claims.takes_over:
            query = query.where(free).order_by(TimerRow.due_at)
        else:  # claimed ones last: most run on a live replica and stay its own
            query = query.where(free | TimerRow.claimed_by.is_not(None))
            mine = claims.holding(TIMER)
            if mine:
                query = query.where(TimerRow.key.not_in(mine))
            query = query.order_by(TimerRow.claimed_by.is_not(None), TimerRow.due_at)
        rows = (
            await self.session.scalars(
                query.limit(limit)
                .with_for_update(skip_locked=True)  # nothing on SQLite
            )
        ).all()
        claimed = []
        for row in rows:
            item = item_name(TIMER, row.key)
            if claims is not None and not await claims.hold(item, now):
                continue
            result = await self.session.execute(
                update(TimerRow)
                .where(TimerRow.key == row.key, TimerRow.token == row.token)
                .values(
                    lease_until=now + (leases_by_kind or {}).get(row.kind, lease),
                    token=row.token + 1,
                    claimed_by=claims.replica if claims is not None else None,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                claimed.append(
                    DueTimer(row.key, row.kind, row.due_at, dict(row.payload), row.token + 1)
                )
            elif claims is not None:
                await claims.release(item)
        return claimed

    async def finish_timer(self, key: str, token: int) -> bool:
        """Drop a timer that ran, unless it was set again meanwhile (its token moved on).
        True if it was still the caller's to finish."""
        result = await self.session.execute(
            delete(TimerRow).where(TimerRow.key == key, TimerRow.token == token)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def timer(self, key: str) -> TimerRow | None:
        return await self.session.get(TimerRow, key)

    # --- references to posted messages ---------------------------------------------

    async def remember_message(self, ref: str, channel: str, ts: str, now: datetime) -> None:
        row = await self.session.get(MessageRefRow, ref)
        if row is None:
            self.session.add(MessageRefRow(ref=ref, channel=channel, ts=ts, at=now))
        else:
            row.channel, row.ts, row.at = channel, ts, now

    async def message_ref(self, ref: str) -> MessageRefRow | None:
        return await self.session.get(MessageRefRow, ref)

    async def release_timer(self, key: str, token: int) -> None:
        """Give up a claim without running it (a bot shutting down): due again at once."""
        await self.session.execute(
            update(TimerRow)
            .where(TimerRow.key == key, TimerRow.token == token)
            .values(lease_until=None, claimed_by=None)
            .execution_options(synchronize_session=False)
        )

    async def timer_failed(self, key: str, token: int) -> None:
        """A claim whose handler failed: nobody runs it now, and its lease stays, so it
        runs again (here or on another replica) once the lease ends."""
        await self.session.execute(
            update(TimerRow)
            .where(TimerRow.key == key, TimerRow.token == token)
            .values(claimed_by=None)
            .execution_options(synchronize_session=False)
        )

    async def next_timer_due(self) -> datetime | None:
        """When a timer may next be claimed: its due time, or the end of its lease when
        one runs past that (a handler in flight, or one that failed and waits)."""
        query = select(func.min(_later(TimerRow.due_at, TimerRow.lease_until)))
        return await self.session.scalar(query)

    # --- gate states ------------------------------------------------------------------

    async def gate_states(self, rollouts: Iterable[str] | None) -> Sequence[GateStateRow]:
        """The gate states of these rollouts (None: of every rollout), in one query."""
        query = select(GateStateRow)
        if rollouts is not None:
            query = query.where(GateStateRow.rollout.in_(list(rollouts)))
        return (await self.session.scalars(query)).all()

    async def save_gate_state(self, rollout: str, gate: str, values: dict[str, Any]) -> None:
        row = await self.session.get(GateStateRow, (rollout, gate))
        if row is None:
            self.session.add(GateStateRow(rollout=rollout, gate=gate, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)

    async def gate_state_values(self, rollouts: Iterable[str] | None) -> Sequence[Row[Any]]:
        """The gate states of these rollouts (None: of every rollout), as plain rows with
        the columns as attributes: many thousands read cheaply, for reading only."""
        query = select(*GateStateRow.__table__.columns)
        if rollouts is not None:
            query = query.where(GateStateRow.rollout.in_(list(rollouts)))
        return (await self.session.execute(query)).all()

    async def write_gate_states(
        self, changed: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
    ) -> None:
        """Write many gate states in two statements: `changed` rows (every column, keyed by
        rollout and gate) in one UPDATE, `new` ones in one INSERT."""
        table = cast(Table, GateStateRow.__table__)
        if changed:
            columns = [c.name for c in table.columns if not c.primary_key]
            await self.session.execute(
                update(table)
                .where(
                    table.c.rollout == bindparam("key_rollout"),
                    table.c.gate == bindparam("key_gate"),
                )
                .values({c: bindparam(c) for c in columns}),
                [
                    {"key_rollout": v["rollout"], "key_gate": v["gate"]}
                    | {c: v[c] for c in columns}
                    for v in changed
                ],
            )
        if new:
            await self.session.execute(insert(table), list(new))

    async def clear_gate_states(self, rollout: str) -> None:
        await self.session.execute(delete(GateStateRow).where(GateStateRow.rollout == rollout))

    # --- housekeeping -----------------------------------------------------------------

    async def prune(self, before: datetime) -> dict[str, int]:
        """Forget what only guards against duplicates or was already delivered, older than
        `before`: processed Slack requests and delivered or abandoned outbox messages."""
        removed = {}
        for name, statement in (
            (
                "processed_requests",
                delete(ProcessedRequestRow).where(ProcessedRequestRow.at < before),
            ),
            (
                "outbox",
                delete(OutboxRow).where(
                    (OutboxRow.delivered_at < before) | (OutboxRow.failed_at < before)
                ),
            ),
        ):
            result = await self.session.execute(statement)
            removed[name] = int(result.rowcount)  # type: ignore[attr-defined]
        return removed

    # --- processed Slack requests -----------------------------------------------------

    async def processed_reply(self, key: str) -> str | None:
        row = await self.session.get(ProcessedRequestRow, key)
        return None if row is None else row.reply

    async def remember_request(self, key: str, now: datetime, reply: str) -> bool:
        """Record that `key` was acted on. False if another worker recorded it first."""
        try:
            async with self.session.begin_nested():
                self.session.add(ProcessedRequestRow(key=key, at=now, reply=reply))
        except IntegrityError:
            return False
        return True

    def _insert_new(self, model: type[Any], rows: list[dict[str, Any]]) -> Any:
        """INSERT … ON CONFLICT DO NOTHING in the database's own dialect: rows whose key is
        taken, even by a transaction that commits while this one runs, are skipped."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        return insert(model).values(rows).on_conflict_do_nothing()
