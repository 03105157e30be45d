"""A no-data or source-down incident ends by itself once every gate it is about is measured
green again: the thread says so, its message shows it resolved, and nobody is paged for it
any more (on a manual clock, past every later step of the chain)."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import ONCALL, dms, incidents, posts, settle, updates

CONFIG = ONCALL + """\
  repeat: 1
gates:
  error_rate:
    query: 'errors{flag="{flag}"}'
    fail_above: 0.01
    interval: 30s
    for: 5m
    no_data_grace: 2m
  latency:
    query: 'latency{flag="{flag}"}'
    fail_above: 0.5
    interval: 30s
    for: 5m
    no_data_grace: 2m
plans:
  hourly:
    stages:
      - {percent: 5, soak: 1h}
      - {percent: 50, soak: 1h}
rollouts:
  - {name: phase-4, flag: phase_4, plan: hourly, gates: [error_rate, latency]}
"""
GREEN = {"errors": 0.001, "latency": 0.2}


class GateSource:
    """Each gate's query answers its value, no data or a down Prometheus, as the test
    says."""

    def __init__(self) -> None:
        self.state = {"errors": "green", "latency": "green"}
        self.values = dict(GREEN)  # what a measured query answers

    async def measure(self, query: str) -> Measurement:
        metric = query.split("{")[0]
        state = self.state[metric]
        if state == "down":
            return Measurement.down("Prometheus is unreachable (connection refused)")
        if state == "no_data":
            return Measurement(())
        return Measurement((self.values[metric],))


async def walk(bot: RolloutBot, clock: ManualClock, minutes: float) -> None:
    for _ in range(round(minutes * 2)):
        await clock.advance(timedelta(seconds=30))
        await settle(bot)


def thread_lines(standin: SlackStandIn, start: str) -> list[str]:
    return [str(p["text"]) for p in posts(standin) if str(p.get("text", "")).startswith(start)]


async def paged_then_green(
    make_bot: BotFactory, http: aiohttp.ClientSession, state: str
) -> tuple[RolloutBot, ManualClock, GateSource]:
    clock = ManualClock()
    source = GateSource()
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await settle(bot)
    source.state["errors"] = state
    await walk(bot, clock, 3)  # past the 2 m grace: on-call is paged
    return bot, clock, source


@pytest.mark.parametrize(("state", "kind"), [("no_data", "no_data"), ("down", "source_down")])
async def test_an_incident_about_an_unmeasured_gate_resolves_itself_when_it_is_green(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession,
    state: str, kind: str,
) -> None:
    bot, clock, source = await paged_then_green(make_bot, http, state)
    (incident,) = await incidents(bot)
    assert (incident.kind, incident.state) == (kind, "open")
    assert [d["channel"] for d in dms(standin)] == ["U0FORGE"]

    source.state["errors"] = "green"
    await walk(bot, clock, 0.5)  # the next measurement
    (incident,) = await incidents(bot)
    assert (incident.state, incident.resolved_by) == ("resolved", "rollout-bot")
    assert thread_lines(standin, "✅") == [
        f"✅ *error_rate* is measured green again: incident #{incident.id} is resolved, and "
        "nobody is paged for it any more."
    ]
    edited = updates(standin)[-1]
    assert edited["text"].startswith(f"✅ Incident #{incident.id}:")
    assert "Resolved by rollout-bot" in edited["text"]
    assert await bot.incidents.live() == []

    # Past every later step of the chain (Hudson at 5 m, the second round, "nobody
    # answered" at 20 m): nobody else is paged and the channel is not called.
    await walk(bot, clock, 30)
    assert [d["channel"] for d in dms(standin)] == ["U0FORGE"]
    assert not [p for p in posts(standin) if "<!channel>" in str(p.get("text", ""))]
    assert (await incidents(bot))[0].state == "resolved"


async def test_it_waits_for_every_gate_it_is_about(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot, clock, source = await paged_then_green(make_bot, http, "no_data")
    source.state["latency"] = "no_data"
    await walk(bot, clock, 3)  # latency too is paged for, on the same incident
    (incident,) = await incidents(bot)
    assert incident.state == "open"

    source.state["errors"] = "green"  # one of its two gates is back
    await walk(bot, clock, 1)
    assert (await incidents(bot))[0].state == "open"
    assert thread_lines(standin, "✅") == []

    source.state["latency"] = "green"
    await walk(bot, clock, 0.5)
    (incident,) = await incidents(bot)
    assert incident.state == "resolved"
    assert thread_lines(standin, "✅") == [
        f"✅ *error_rate*, *latency* are measured green again: incident #{incident.id} is "
        "resolved, and nobody is paged for it any more."
    ]


async def test_a_gate_back_but_red_leaves_the_incident_open(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot, clock, source = await paged_then_green(make_bot, http, "no_data")
    source.values["errors"] = 0.05  # measured again, but failing: not the all-clear
    source.state["errors"] = "green"
    await walk(bot, clock, 1)
    (incident,) = await incidents(bot)
    assert incident.state == "open"
    assert thread_lines(standin, "✅") == []
