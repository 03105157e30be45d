"""Several replicas on one PostgreSQL database: one decision per version, one delivery per
message."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import RolloutBot
from bot.config import parse_config
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser, bot_settings, fresh_postgres
from tests.support.incidents import settle

ONE = """
roles: {leads: [U0CORA], operators: [U0FORGE]}
rollouts:
  - {name: phase-4, flag: phase_4_deployment}
"""


async def test_two_replicas_share_one_database(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    first = await make_bot(ONE, database_url=postgres_url)
    second = await make_bot(ONE, database_url=postgres_url)  # migrations run twice, harmlessly
    cora_on_first = SlackUser(http, first, "U0CORA")
    cora_on_second = SlackUser(http, second, "U0CORA")

    assert "progressing at 5 %" in await cora_on_first.say("start phase-4")
    # Writes wait behind a table lock for a moment, so both replicas read the rollout
    # before either writes: concurrent for sure, not by luck of timing.
    locker = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE rollouts IN EXCLUSIVE MODE")
            both = asyncio.gather(
                cora_on_first.say("advance next force both at once"),
                cora_on_second.say("advance next force both at once"),
            )
            await asyncio.sleep(0.5)
        replies = await both
    finally:
        await locker.close()
    assert sorted(r.startswith("Done:") for r in replies) == [False, True], replies
    assert "moved while you were acting" in next(r for r in replies if not r.startswith("Done:"))

    assert "paused at 10 %" in await SlackUser(http, second, "U0FORGE").say("pause -- lunch")
    assert "progressing at 10 %" in await cora_on_first.say("resume")

    # Both outbox workers run; each message reaches Slack once, in order.
    await standin.wait_for("chat.postMessage", count=5, timeout=60)
    await settle(first)  # every queued message is marked delivered: none can go twice
    await settle(second)
    texts = [c.params["text"].split("\n")[0] for c in standin.calls_to("chat.postMessage")]
    assert texts == [
        "phase-4: progressing at 5 %",
        "<@U0CORA> started phase-4 0 % → 5 %",
        "<@U0CORA> advanced phase-4 5 % → 10 %",
        "<@U0FORGE> paused phase-4 at 10 %",
        "<@U0CORA> resumed phase-4 at 10 %",
    ]
    statuses = await second.service.statuses()
    assert (statuses["phase-4"].percent, statuses["phase-4"].version) == (10, 4)


SEVERAL = """
roles: {leads: [U0CORA], operators: [U0FORGE]}
gates:
  error_rate: {query: 'rate(errors{flag="{flag}"}[1m])', fail_above: 0.01}
rollouts:
  - {name: phase-4, flag: phase_4_deployment, gates: [error_rate]}
  - {name: search-v2, flag: search_v2, plan: fast}
  - {name: checkout, flag: checkout_v3, plan: six-day}
"""


async def test_two_replicas_starting_together_on_a_fresh_database(
    standin: SlackStandIn,
) -> None:
    """Both replicas of a new deployment come up, ten times out of ten: migrations, the
    rollouts' rows and the start-up timers are each written once, whoever is first."""
    for attempt in range(10):
        async with fresh_postgres() as url:
            bots = [
                RolloutBot(parse_config(SEVERAL), bot_settings(standin, url)) for _ in range(2)
            ]
            started = await asyncio.gather(*(b.start() for b in bots), return_exceptions=True)
            for bot, result in zip(bots, started, strict=True):
                if result is None:
                    await bot.stop()
                elif hasattr(bot, "engine"):
                    await bot.engine.dispose()  # it failed part way: nothing else runs
            failures = [repr(r) for r in started if isinstance(r, BaseException)]
            assert not failures, f"attempt {attempt + 1}: {failures}"
            async with create_async_engine(url).connect() as conn:
                names = (await conn.execute(text("SELECT name FROM rollouts"))).scalars()
                timers = (await conn.execute(text("SELECT key FROM timers"))).scalars()
                assert sorted(names) == ["checkout", "phase-4", "search-v2"]
                assert sorted(timers) == ["daily", "housekeeping"]
