"""The whole path on a manual clock: a gate stays red, the control loop rolls back by
itself, an incident opens and the on-call chain is paged; an unknown gate past its grace
holds the rollout and pages too."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import ONCALL, dms, incidents, posts, settle


class SetSource:
    """A metrics source answering whatever the test sets."""

    def __init__(self) -> None:
        self.answer = Measurement((0.001,))

    async def measure(self, query: str) -> Measurement:
        return self.answer


CONFIG = ONCALL + """\
gates:
  error_rate:
    query: 'sum(rate(errors{flag="{flag}"}[1m]))'
    fail_above: 0.01
    for: 2m
    interval: 30s
    no_data_grace: 3m
rollouts:
  - name: checkout
    flag: new_checkout
    plan: safe
    gates: [error_rate]
"""


async def run_minutes(bot: RolloutBot, clock: ManualClock, minutes: int) -> None:
    for _ in range(minutes * 2):
        await clock.advance(timedelta(seconds=30))
        await settle(bot)


async def test_an_automatic_rollback_pages_the_chain(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock, source = ManualClock(), SetSource()
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await run_minutes(bot, clock, 2)
    assert dms(standin) == []

    source.answer = Measurement((0.2,))  # red
    await run_minutes(bot, clock, 4)
    status = (await bot.service.statuses())["checkout"]
    assert status.state.value == "rolled_back"
    (incident,) = await incidents(bot)
    assert (incident.kind, incident.rollout) == ("automatic_rollback", "checkout")
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]
    assert "rolled back automatically" in dms(standin)[0]["text"]
    mentions = [p for p in posts(standin) if p["text"].startswith("<@U0FORGE> you are paged")]
    assert mentions and mentions[0]["thread_ts"] == incident.thread_ts

    await run_minutes(bot, clock, 5)
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE", "U0HUDSON"]


async def test_a_gate_without_data_past_its_grace_pages_once(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock, source = ManualClock(), SetSource()
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    source.answer = Measurement(())  # no data
    await run_minutes(bot, clock, 4)
    rows = await incidents(bot)
    assert [(r.kind, r.rollout) for r in rows] == [("no_data", "checkout")]
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]
