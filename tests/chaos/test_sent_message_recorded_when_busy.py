"""A message Slack has taken is recorded as delivered even when the database is busy at that
moment (another process holds SQLite's write lock past the busy timeout): the bot waits the
lock out instead of leaving the message leased, whose lease would end with it sent twice (a
page to on-call paged again, a thread started twice)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.domain.rollout import Start
from bot.services.outbox import LEASE
from bot.services.rollouts import Actor
from bot.standin.web_api import SlackStandIn
from storage.db import create_engine, reader
from storage.models import OutboxRow
from tests.chaos.test_database_busy_and_full import write_lock
from tests.conftest import BotFactory
from tests.support.incidents import posts, settle

BUSY_LOG = "database busy recording a sent message"
CONFIG = 'channel: "#deployments"\nrollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n'


async def until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.02)


async def test_a_message_sent_while_the_database_is_busy_is_sent_once(
    make_bot: BotFactory,
    standin: SlackStandIn,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.services.outbox")
    clock = ManualClock()  # stands still: a lease ends only when the test moves it
    bot = await make_bot(CONFIG, clock=clock)
    engine = create_engine(sqlite_url)
    rows = reader(engine)

    async def outbox() -> list[OutboxRow]:
        async with rows() as session:
            return list((await session.scalars(select(OutboxRow))).all())

    async def leased() -> bool:
        return any(r.lease_until is not None and r.delivered_at is None for r in await outbox())

    async def busy_logged() -> bool:
        return any(BUSY_LOG in r.getMessage() for r in caplog.records)

    async def all_delivered() -> bool:
        found = await outbox()
        return bool(found) and all(r.delivered_at is not None for r in found)

    standin.delay("chat.postMessage", 1.0)  # in flight long enough to take the lock meanwhile
    try:
        assert (await bot.service.act("phase-4", Start(), Actor("U0CORA", "slash"))).ok
        await until(leased, "the rollout's thread message leased for delivery")
        async with write_lock(Path(sqlite_url.split("///", 1)[1])):
            # Slack takes the message; recording it meets the lock past the busy timeout.
            await until(busy_logged, "the bot waiting out the busy database")
        await until(all_delivered, "every message recorded as delivered once the lock is gone")
        await clock.advance(LEASE + timedelta(seconds=1))  # a lease left behind ends here
        await settle(bot, timeout=60)
    finally:
        await engine.dispose()
    parents = [p for p in posts(standin) if "thread_ts" not in p]
    assert len(parents) == 1, [p.get("text") for p in parents]
