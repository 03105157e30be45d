"""Daily housekeeping forgets old duplicate guards and delivered messages, never the audit
log."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
from sqlalchemy import func, select

from bot.clock import ManualClock
from storage.incidents import AlertNotificationRow, Incidents
from storage.models import OutboxRow, ProcessedRequestRow
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import settle

CONFIG = "rollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n"


async def test_old_guards_and_delivered_messages_are_pruned_after_30_days(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(CONFIG, clock=clock)
    await SlackUser(http, bot, "U0CORA").say("start")
    async with bot.service.sessions() as session, session.begin():
        await Incidents(session).remember_notification("group:firing:fp", clock.now(), "g", None)
    await settle(bot)
    started = clock.now()

    async def count(model: type, column: object) -> int:
        async with bot.service.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(model).where(column <= started)  # type: ignore[operator]
                )
                or 0
            )

    assert await count(ProcessedRequestRow, ProcessedRequestRow.at) == 1
    assert await count(OutboxRow, OutboxRow.created_at) == 2  # the thread and its first reply
    await clock.advance(timedelta(days=29))
    await settle(bot)
    assert await count(ProcessedRequestRow, ProcessedRequestRow.at) == 1  # not 30 days yet

    await clock.advance(timedelta(days=2))
    await settle(bot)
    assert await count(ProcessedRequestRow, ProcessedRequestRow.at) == 0
    assert await count(OutboxRow, OutboxRow.created_at) == 0
    assert await count(AlertNotificationRow, AlertNotificationRow.at) == 0
    history = await bot.service.history("phase-4")
    assert [e["verb"] for e in history] == ["start"]  # the audit log stays
