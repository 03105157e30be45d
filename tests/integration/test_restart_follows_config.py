"""After a restart on the same database with a changed config, every timer the config
derives follows the new config: the daily summary's time, the checkpoint cadence, the gates'
measuring intervals, a stage's soak."""

from __future__ import annotations

from datetime import datetime, timedelta

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import posts, settle


def config(*, daily: str = "09:30", every: str = "15m", interval: str = "30s",
           soak: str = "2h", window: str = "10m") -> str:
    return f"""
channel: "#deployments"
timezone: UTC
daily_summary: "{daily}"
checkpoints:
  - {{every: {every}}}
gates:
  error_rate: {{query: 'errors{{flag="{{flag}}"}}', fail_above: 0.01, for: {window},
               interval: {interval}}}
plans:
  short:
    stages:
      - {{percent: 5, soak: {soak}}}
      - {{percent: 50, soak: {soak}}}
rollouts:
  - {{name: phase-4, flag: phase_4, plan: short, gates: [error_rate], advance: auto}}
  - {{name: search-v2, flag: search_v2, plan: short, advance: auto}}
"""


class CountingSource:
    """Every query is green; remembers when each measurement was taken."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.measured: list[datetime] = []

    async def measure(self, query: str) -> Measurement:
        self.measured.append(self.clock.now())
        return Measurement((0.001,))


def texts_starting(standin: SlackStandIn, prefix: str) -> list[str]:
    return [str(p["text"]) for p in posts(standin) if str(p.get("text", "")).startswith(prefix)]


async def walk_to(bot: RolloutBot, clock: ManualClock, moment: datetime,
                  step: timedelta = timedelta(minutes=5)) -> None:
    while clock.now() < moment:
        await clock.advance(min(step, moment - clock.now()))
        await settle(bot)


async def restarted(
    make_bot: BotFactory, http: aiohttp.ClientSession, clock: ManualClock,
    source: CountingSource, name: str = "phase-4", **changed: str,
) -> RolloutBot:
    """Start a rollout at 09:00 with the first config; at 09:05 stop the bot, change the
    config and start it again on the same database."""
    bot = await make_bot(config(), clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say(f"start {name}")
    await walk_to(bot, clock, clock.now() + timedelta(minutes=5))
    await bot.stop()
    bot = await make_bot(config(**changed), clock=clock, metrics_source=source)
    await settle(bot)
    return bot


async def test_a_changed_daily_summary_time_is_followed_after_a_restart(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()  # 2026-11-02 09:00 UTC
    today = clock.now()
    bot = await restarted(make_bot, http, clock, CountingSource(clock), daily="12:00")

    await walk_to(bot, clock, today.replace(hour=11, minute=55))
    assert texts_starting(standin, "Daily") == []  # not at the old 09:30
    await walk_to(bot, clock, today.replace(hour=12))
    assert len(texts_starting(standin, "Daily")) == 1  # at the new 12:00, the same day


async def test_a_changed_checkpoint_cadence_is_followed_after_a_restart(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    started = clock.now()
    bot = await restarted(make_bot, http, clock, CountingSource(clock), every="1h")

    await walk_to(bot, clock, started + timedelta(minutes=55))
    assert texts_starting(standin, "Checkpoint") == []  # none at the old 15-minute steps
    await walk_to(bot, clock, started + timedelta(hours=2, minutes=55))
    assert len(texts_starting(standin, "Checkpoint")) == 2  # 10:00 and 11:00


async def test_a_shorter_gate_interval_is_followed_after_a_restart(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    source = CountingSource(clock)
    bot = await make_bot(config(interval="10m"), clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await settle(bot)
    assert source.measured == [clock.now()]
    await walk_to(bot, clock, clock.now() + timedelta(minutes=1), step=timedelta(seconds=30))
    await bot.stop()

    bot = await make_bot(config(interval="30s"), clock=clock, metrics_source=source)
    restart = clock.now()
    await settle(bot)
    await walk_to(bot, clock, restart + timedelta(minutes=2), step=timedelta(seconds=30))
    since_restart = [t - restart for t in source.measured if t >= restart]
    # Every 30 s from the restart on, not next at the old ten minutes.
    assert since_restart == [timedelta(seconds=s) for s in range(0, 121, 30)], since_restart


async def test_a_shorter_soak_is_followed_after_a_restart(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    """search-v2 has no gates: only its soak's timer advances it."""
    clock = ManualClock()
    started = clock.now()
    bot = await restarted(
        make_bot, http, clock, CountingSource(clock), name="search-v2", soak="1h"
    )

    await walk_to(bot, clock, started + timedelta(hours=1, minutes=5))
    events = await bot.service.history("search-v2")
    advanced = [(e["at"] - started, e["to_percent"]) for e in events if e["verb"] == "advance"]
    assert advanced == [(timedelta(hours=1), 50)]  # after the new 1 h, not the old 2 h
