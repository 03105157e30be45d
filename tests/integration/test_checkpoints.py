"""Checkpoints over 48 simulated hours on a manual clock: the cadence, restarts, outages."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.durations import format_elapsed
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import open_via_opener, posts, settle

CONFIG = """
channel: "#deployments"
rollouts:
  - {name: phase-4, flag: phase_4_deployment, plan: safe}
"""
# After a change of percentage: every 15 min for 6 h (24), hourly from 7 h to 24 h (18),
# every 3 h from 27 h to 48 h (8).
CADENCE_48H = 24 + 18 + 8
EXPECTED_TIMES = (
    [timedelta(minutes=15 * i) for i in range(1, 25)]
    + [timedelta(hours=h) for h in range(7, 25)]
    + [timedelta(hours=h) for h in range(27, 49, 3)]
)


def checkpoint_times(standin: SlackStandIn) -> list[str]:
    return [p["text"] for p in posts(standin) if str(p.get("text", "")).startswith("Checkpoint")]


def in_stage(standin: SlackStandIn) -> list[str]:
    """How long the rollout had been in its stage at each checkpoint, as each one says."""
    heads = [p["blocks"][0]["text"]["text"] for p in posts(standin)
             if str(p.get("text", "")).startswith("Checkpoint")]
    return [m.group(1) for h in heads if (m := re.search(r"· (\S+) in stage", h))]


async def walk(bot: RolloutBot, clock: ManualClock, hours: float) -> None:
    """Move the clock five minutes at a time, letting the bot do what falls due."""
    for _ in range(round(hours * 12)):
        await clock.advance(timedelta(minutes=5))
        await settle(bot)


async def advanced(make_bot: BotFactory, http: aiohttp.ClientSession, clock: ManualClock
                   ) -> RolloutBot:
    bot = await make_bot(CONFIG, clock=clock)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    await clock.advance(timedelta(days=1))  # the 5 % stage's soak
    await settle(bot)
    assert "progressing at 10 %" in await cora.say("advance next")
    return bot


async def test_48_hours_after_an_advance_with_a_restart(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await advanced(make_bot, http, clock)
    standin.clear()
    changed = clock.now()
    await walk(bot, clock, 20)
    await bot.stop()  # a restart: the schedule is in the database
    bot = await make_bot(CONFIG, clock=clock)
    await walk(bot, clock, 28)
    assert clock.now() - changed == timedelta(hours=48)
    texts = checkpoint_times(standin)
    assert len(texts) == CADENCE_48H
    assert in_stage(standin) == [format_elapsed(t) for t in EXPECTED_TIMES]
    checkpoints = [c for c in standin.calls_to("chat.postMessage")
                   if str(c.params.get("text", "")).startswith("Checkpoint")]
    assert all("thread_ts" in c.params for c in checkpoints)  # in the rollout's thread
    first = checkpoints[0].params["blocks"][0]["text"]["text"]
    assert "`▰▱▱▱▱▱▱▱▱▱` *10 %* · stage 2 of 6 · 15m in stage" in first
    last_changes = checkpoints[0].params["blocks"][-1]["elements"][0]["text"]
    assert "<@U0CORA> advance 5 % → 10 %" in last_changes  # what changed since the last one
    assert "no changes" in checkpoints[1].params["blocks"][-1]["elements"][0]["text"]
    daily = [p for p in posts(standin) if str(p.get("text", "")).startswith("Daily rollout")]
    assert len(daily) == 2  # 09:00 on each of the two days


async def test_an_outage_gets_one_catch_up_not_a_burst(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await advanced(make_bot, http, clock)
    standin.clear()
    await walk(bot, clock, 30)
    assert len(checkpoint_times(standin)) == 24 + 18 + 2  # … 24 h, 27 h, 30 h
    await bot.stop()
    await clock.advance(timedelta(hours=10))  # down from 30 h to 40 h: 33, 36, 39 h missed
    bot = await make_bot(CONFIG, clock=clock)
    await settle(bot)
    assert len(checkpoint_times(standin)) == 24 + 18 + 2 + 1  # one catch-up at 40 h
    await walk(bot, clock, 8)  # 42, 45, 48 h
    assert len(checkpoint_times(standin)) == CADENCE_48H - 3 + 1


async def test_no_checkpoints_once_rolled_back(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await advanced(make_bot, http, clock)
    standin.clear()
    await walk(bot, clock, 0.5)
    assert len(checkpoint_times(standin)) == 2
    await SlackUser(http, bot, "U0CORA").say("rollback")
    await walk(bot, clock, 3)
    assert len(checkpoint_times(standin)) == 2


async def test_acknowledgements_show_under_what_changed(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await advanced(make_bot, http, clock)
    await walk(bot, clock, 0.25)
    await open_via_opener(bot)
    await settle(bot)
    standin.clear()
    assert "acknowledged" in (await SlackUser(http, bot, "U0CORA").say("ack")).lower()
    await walk(bot, clock, 0.25)
    (checkpoint,) = [p for p in posts(standin) if str(p.get("text", "")).startswith("Checkpoint")]
    changes = checkpoint["blocks"][-1]["elements"][0]["text"]
    assert "<@U0CORA> acknowledged INC-1" in changes
    assert "held by <@U0CORA>" in json.dumps(checkpoint["blocks"])
