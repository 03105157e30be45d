"""A bot that was down for a while (a deploy) does not restart a green soak when the
metrics' own history shows the gate green through the time it did not watch; it does when
that history shows a red moment, or when the source keeps no history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import settle
from tests.support.recorded_metrics import ModelledSource, SteadySource

CONFIG = """
channel: "#deployments"
gates:
  error_rate:
    query: 'sum(rate(errors{flag="{flag}"}[1m]))'
    fail_above: 0.01
    for: 5m
    interval: 30s
plans:
  hourly:
    stages:
      - {percent: 5, soak: 1h}
      - {percent: 25, soak: 1h}
rollouts:
  - {name: phase-4, flag: phase_4, plan: hourly, gates: [error_rate], advance: auto}
"""
DOWN_FROM, DOWN_FOR = timedelta(minutes=20), timedelta(minutes=10)  # the bot's outage


async def walk(bot: RolloutBot, clock: ManualClock, until: datetime) -> None:
    while clock.now() < until:
        await clock.advance(timedelta(seconds=30))
        await settle(bot)


async def advanced_after(
    make_bot: BotFactory, http: aiohttp.ClientSession, clock: ManualClock, source: Any
) -> timedelta | None:
    """Start; soak 20 min; the bot is down 10 min; restart; walk to 2 h. When it advanced."""
    started = clock.now()
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start")
    await walk(bot, clock, started + DOWN_FROM)
    await bot.stop()
    await clock.advance(DOWN_FOR)
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await walk(bot, clock, started + timedelta(hours=2))
    events = await bot.service.history("phase-4")
    return next((e["at"] - started for e in events if e["verb"] == "advance"), None)


async def test_green_history_through_the_outage_keeps_the_soak(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    source = ModelledSource(clock, lambda at: 0.002)
    took = await advanced_after(make_bot, http, clock, source)
    assert took is not None and took <= timedelta(hours=1, minutes=1), took
    assert source.range_queries, "the outage was filled from the metrics' history"


async def test_a_red_moment_in_the_outage_restarts_the_soak(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    blip = clock.now() + DOWN_FROM + timedelta(minutes=4)  # while nobody watched

    def errors(at: datetime) -> float:
        return 0.05 if blip <= at < blip + timedelta(minutes=1) else 0.002

    took = await advanced_after(make_bot, http, clock, ModelledSource(clock, errors))
    back = DOWN_FROM + DOWN_FOR
    assert took is not None and back + timedelta(hours=1) <= took, took


async def test_without_history_unwatched_time_never_counts_as_green(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    took = await advanced_after(make_bot, http, clock, SteadySource(0.002))  # no range queries
    back = DOWN_FROM + DOWN_FOR
    assert took is not None and back + timedelta(hours=1) <= took, took
