"""Claims of timers and outbox messages by several replicas on one PostgreSQL database:
never the same row twice, and a claimer whose connection dies lets go at once. On a SQLite
file one bot holds alone, what a dead bot left claimed is taken over at once too. And kinds
run in order: a checkpoint waits for the gate tick due with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.services.scheduler import Scheduler
from storage.claims import OUTBOX, TIMER, Claims
from storage.db import create_engine, migrate, sessionmaker
from storage.repository import DueTimer, Repository
from tests.conftest import fresh_postgres

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)  # long: only a takeover can explain a second claim


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_postgres() as url:
        engine = create_engine(url)
        await migrate(engine)
        await engine.dispose()
        yield url


class Claimer:
    """One replica's side of claiming: its own engine (pool) and its own lock connection."""

    def __init__(self, url: str, name: str, *, sole: bool = False) -> None:
        self.engine: AsyncEngine = create_engine(url)
        self.sessions = sessionmaker(self.engine)
        self.claims = Claims(self.engine, name, sole=sole)

    async def timers(self, now: datetime = NOW, limit: int = 100) -> list[str]:
        async with self.sessions() as session, session.begin():
            due = await Repository(session).claim_due_timers(
                now, LEASE, limit=limit, claims=self.claims
            )
        return [timer.key for timer in due]

    async def heads(self, now: datetime = NOW) -> list[int]:
        async with self.sessions() as session, session.begin():
            rows = await Repository(session).claim_outbox_heads(now, LEASE, claims=self.claims)
        return [row.id for row in rows]

    async def close(self) -> None:
        await self.claims.close()
        await self.engine.dispose()


async def add_timers(url: str, keys: list[str]) -> None:
    engine = create_engine(url)
    async with sessionmaker(engine)() as session, session.begin():
        for key in keys:
            await Repository(session).set_timer(key, "gates", NOW - timedelta(seconds=1))
    await engine.dispose()


async def add_messages(url: str, channels: list[str], per_channel: int) -> None:
    engine = create_engine(url)
    async with sessionmaker(engine)() as session, session.begin():
        for n in range(per_channel):
            for channel in channels:
                Repository(session).enqueue(channel, "message", {"text": f"{n}"}, NOW)
    await engine.dispose()


async def lock_holders(url: str) -> set[int]:
    """The backends holding advisory locks in this database."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        pids = await conn.scalars(
            text(
                "SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
            )
        )
        found = set(pids)
    await engine.dispose()
    return found


async def terminate(url: str, pids: set[int]) -> None:
    """What PostgreSQL does when a replica's process dies: its backends end."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        for pid in pids:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await engine.dispose()


async def test_two_claimers_never_get_the_same_timer(database: str) -> None:
    keys = [f"gates:rollout-{n}" for n in range(60)]
    await add_timers(database, keys)
    first, second = Claimer(database, "one"), Claimer(database, "two")
    try:
        # Each takes a batch while the other holds one, then both drain the rest at once
        # (which of them gets more is the machine's business).
        got = {"one": await first.timers(limit=3), "two": await second.timers(limit=3)}
        assert len(got["one"]) == len(got["two"]) == 3

        async def drain(claimer: Claimer) -> None:
            while batch := await claimer.timers(limit=3):
                got[claimer.claims.replica] += batch

        await asyncio.gather(drain(first), drain(second))
        assert not set(got["one"]) & set(got["two"]), got
        assert sorted(got["one"] + got["two"]) == sorted(keys)
        # Each holds what it claimed: neither may claim the other's, nor its own again.
        assert await first.timers() == [] and await second.timers() == []
        assert sorted(first.claims.holding(TIMER)) == sorted(got["one"])
    finally:
        await first.close()
        await second.close()


async def test_two_claimers_never_get_the_same_outbox_message(database: str) -> None:
    channels = [f"C{n:03d}" for n in range(12)]
    await add_messages(database, channels, per_channel=3)
    first, second = Claimer(database, "one"), Claimer(database, "two")
    try:
        one, two = await asyncio.gather(first.heads(), second.heads())
        assert not set(one) & set(two)
        assert len(one) + len(two) == len(channels)  # one head per channel, no more
        # While its head is held, a channel's next message waits, for both.
        assert await first.heads() == [] and await second.heads() == []
        async with first.sessions() as session, session.begin():
            for message in one:
                await Repository(session).outbox_done(message, NOW)
        for message in one:
            await first.claims.release(f"{OUTBOX}:{message}")
        # The channels whose head was delivered go on, each with its next message (ids
        # were given a round of channels at a time); the others still wait.
        assert sorted(await second.heads()) == sorted(m + len(channels) for m in one)
    finally:
        await first.close()
        await second.close()


async def test_a_claimer_whose_connection_dies_releases_its_rows_at_once(database: str) -> None:
    await add_timers(database, ["gates:phase-4", "escalation:7"])
    await add_messages(database, ["C1", "C2"], per_channel=2)
    doomed, survivor = Claimer(database, "doomed"), Claimer(database, "survivor")
    try:
        assert sorted(await doomed.timers()) == ["escalation:7", "gates:phase-4"]
        assert len(await doomed.heads()) == 2
        assert await survivor.timers() == [] and await survivor.heads() == []

        holders = await lock_holders(database)
        assert len(holders) == 1  # the doomed replica's lock connection
        await terminate(database, holders)

        # The clock has not moved: the leases run for half an hour yet, and still the
        # survivor takes everything over on its very next claim.
        assert sorted(await survivor.timers()) == ["escalation:7", "gates:phase-4"]
        assert len(await survivor.heads()) == 2
        async with survivor.sessions() as session:
            timer = await Repository(session).timer("gates:phase-4")
        assert timer is not None and timer.claimed_by == "survivor"
    finally:
        await doomed.close()
        await survivor.close()


async def test_a_failed_timer_waits_out_its_lease_on_every_replica(database: str) -> None:
    await add_timers(database, ["gates:phase-4"])
    first, second = Claimer(database, "one"), Claimer(database, "two")
    try:
        [key] = await first.timers()
        async with first.sessions() as session, session.begin():
            row = await Repository(session).timer(key)
            assert row is not None
            await Repository(session).timer_failed(key, row.token)
        await first.claims.release(f"{TIMER}:{key}")
        assert await second.timers() == [] and await first.timers() == []
        assert await second.timers(now=NOW + LEASE + timedelta(seconds=1)) == [key]
    finally:
        await first.close()
        await second.close()


async def sqlite_database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


async def test_on_sqlite_without_the_file_to_itself_the_lease_alone_decides(
    tmp_path: Path,
) -> None:
    url = await sqlite_database(tmp_path)
    await add_timers(url, ["gates:phase-4"])
    claimer = Claimer(url, "only")
    try:
        assert not claimer.claims.shared
        assert await claimer.timers() == ["gates:phase-4"]
        assert await claimer.timers(now=NOW + timedelta(minutes=29)) == []
        # Its handler failed (the scheduler lets go of the claim, the lease stays).
        await claimer.claims.release(f"{TIMER}:gates:phase-4")
        assert await claimer.timers(now=NOW + timedelta(minutes=29)) == []
        assert await claimer.timers(now=NOW + LEASE + timedelta(seconds=1)) == ["gates:phase-4"]
    finally:
        await claimer.close()


async def test_a_scheduler_takes_over_the_tick_a_dead_replica_was_running(database: str) -> None:
    """Two schedulers; the one running a gate tick loses its database connection (as a
    killed process does) in the middle of it: the other runs the tick on its next pass,
    with the clock where it was and the lease long from over."""
    await add_timers(database, ["gates:phase-4"])
    clock = ManualClock(NOW)
    doomed, survivor = Claimer(database, "doomed"), Claimer(database, "survivor")
    ran: list[str] = []
    stuck = asyncio.Event()

    def scheduler(claimer: Claimer) -> Scheduler:
        async def tick(timer: DueTimer) -> None:
            ran.append(claimer.claims.replica)
            if claimer is doomed:
                stuck.set()
                await asyncio.Event().wait()  # never returns: the process dies first

        made = Scheduler(claimer.sessions, clock, lease=LEASE, claims=claimer.claims)
        made.on("gates", tick)
        return made

    first, second = scheduler(doomed), scheduler(survivor)
    running = asyncio.create_task(first.run_due())
    try:
        await asyncio.wait_for(stuck.wait(), 60)
        assert await second.run_due() == 0  # it runs elsewhere, alive
        await terminate(database, await lock_holders(database))
        assert await second.run_due() == 1
        assert ran == ["doomed", "survivor"]
        async with survivor.sessions() as session:
            assert await Repository(session).timer("gates:phase-4") is None  # finished
    finally:
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await doomed.close()
        await survivor.close()


async def test_a_bot_alone_on_its_sqlite_file_takes_over_what_a_dead_one_left(
    tmp_path: Path,
) -> None:
    """The bot before was killed holding a timer and a message; the one after, holding the
    file's lock (so the only bot on it), claims both at once, lease or not — and never what
    it holds itself."""
    url = await sqlite_database(tmp_path)
    await add_timers(url, ["gates"])
    await add_messages(url, ["C1"], per_channel=1)
    dead = Claimer(url, "before", sole=True)
    try:
        assert await dead.timers() == ["gates"] and len(await dead.heads()) == 1
    finally:
        await dead.close()  # what it held in memory is gone; the leases stay in the file
    after = Claimer(url, "after", sole=True)
    try:
        assert await after.timers() == ["gates"]
        assert len(await after.heads()) == 1
        assert await after.timers() == [] and await after.heads() == []  # its own, running
    finally:
        await after.close()


async def test_a_kind_waits_for_the_kinds_it_runs_after(tmp_path: Path) -> None:
    """A checkpoint due together with a gate tick is claimed once the tick has run (it
    describes the gates as measured then); one whose tick failed does not wait for it."""
    url = await sqlite_database(tmp_path)
    bot = Claimer(url, "bot", sole=True)
    after = {"checkpoint": ("gates",)}

    async def claim(now: datetime = NOW) -> list[str]:
        async with bot.sessions() as session, session.begin():
            due = await Repository(session).claim_due_timers(
                now, LEASE, claims=bot.claims, after=after
            )
        return [timer.key for timer in due]

    async def set_timer(key: str, due: datetime) -> None:
        async with bot.sessions() as session, session.begin():
            await Repository(session).set_timer(key, key.split(":")[0], due)

    try:
        await set_timer("gates", NOW - timedelta(minutes=1))
        await set_timer("checkpoint:phase-4", NOW - timedelta(minutes=5))
        assert await claim() == ["gates"]  # the checkpoint is older, but waits
        assert await claim() == []  # while the tick runs
        await set_timer("gates", NOW + timedelta(seconds=30))  # it ran: the next in 30 s
        await bot.claims.release(f"{TIMER}:gates")
        assert await claim() == ["checkpoint:phase-4"]
        await bot.claims.release(f"{TIMER}:checkpoint:phase-4")

        # A tick that failed waits out its lease; the checkpoint does not wait for it.
        await set_timer("checkpoint:phase-4", NOW)
        later = NOW + timedelta(minutes=1)
        assert await claim(later) == ["gates"]
        async with bot.sessions() as session, session.begin():
            row = await Repository(session).timer("gates")
            assert row is not None
            await Repository(session).timer_failed("gates", row.token)
        await bot.claims.release(f"{TIMER}:gates")
        assert await claim(later) == ["checkpoint:phase-4"]
    finally:
        await bot.close()
