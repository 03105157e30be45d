"""R3: Prometheus fails mid-canary — down, then slow, then answering garbage — and the
rollout holds: 0 false rollbacks, 0 advances, the hold shown in the API, `/rollout status`
and the thread, on-call paged once the grace has passed. When Prometheus answers again,
the rollout goes on (it advances once its soak has been green).

A real Prometheus scrapes a service whose error rate is 0; the bot asks it through a
fault-injecting proxy (`tests.support.fault_proxy`) and runs on a manual clock, 30 s a
tick. Each cycle: 10 simulated minutes down, `slow` ticks whose answer comes after the
bot's 1 s timeout, then each garbage answer in turn; then back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.standin.web_api import SlackStandIn
from tests.chaos.conftest import figures, scaled
from tests.conftest import BotFactory, SlackUser
from tests.integration.test_control_loop import FLAG, QUERY, rollout
from tests.support.fake_service import FakeService
from tests.support.fault_proxy import GARBAGE, FaultProxy
from tests.support.incidents import dms, posts, settle
from tests.support.prometheus_server import PrometheusServer

TICK = timedelta(seconds=30)
GRACE = timedelta(minutes=2)
SOAK = timedelta(minutes=30)
DOWN = timedelta(minutes=10)
CONFIG = f"""
channel: "#deployments"
prometheus:
  timeout: 1s
roles:
  leads: [U0CORA]
  operators: [U0FORGE]
oncall:
  chain:
    - {{user: U0FORGE, wait: 30m}}
gates:
  error_rate:
    query: '{QUERY}'
    fail_above: {{canary: 0.05, progressive: 0.05, final: 0.05}}
    for: 5m
    interval: 30s
    no_data_grace: 2m
plans:
  quick:
    stages:
      - {{percent: 5, soak: 30m}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: {FLAG}
    plan: quick
    gates: [error_rate]
    advance: auto
"""
HELD = "Held: error_rate — Prometheus unreachable since "
STARTS = "⏸️ checkout is held at 5 %: error_rate — Prometheus unreachable since "


class Watch:
    """Walks the manual clock a tick at a time and checks, after every tick, what must
    hold all along: no rollback, and no advance while a fault lasts."""

    def __init__(self, bot: RolloutBot, clock: ManualClock, http: aiohttp.ClientSession):
        self.bot, self.clock, self.http = bot, clock, http
        self.ticks = 0
        self.faulty_ticks = 0

    async def state(self) -> dict[str, Any]:
        return await rollout(self.http, self.bot)

    async def tick(self, *, faulty: bool) -> dict[str, Any]:
        await self.clock.advance(TICK)
        await settle(self.bot, timeout=60)
        self.ticks += 1
        data = await self.state()
        verbs = [e["verb"] for e in data["events"]]
        assert "rollback" not in verbs, f"a false rollback: {data['events'][:3]}"
        assert data["state"] == "progressing", data
        if faulty:
            self.faulty_ticks += 1
            assert data["percent"] == 5, f"advanced while Prometheus was failing: {data}"
            assert [(h["gate"], h["outcome"]) for h in data["held_by"]] == [
                ("error_rate", "source_down")
            ], (data["held_by"], data["gate_states"])
        return data


def pages(standin: SlackStandIn) -> list[dict[str, Any]]:
    return [d for d in dms(standin) if d["channel"] == "U0FORGE"]


async def test_a_failing_prometheus_holds_the_canary_pages_after_the_grace_and_it_goes_on(
    make_bot: BotFactory,
    fake_service: FakeService,
    prometheus: PrometheusServer,
    proxy: FaultProxy,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
) -> None:
    cycles = scaled(1, 4)
    slow_ticks = scaled(2, 6)
    started = time.monotonic()
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    await prometheus.wait_for_value(
        QUERY.replace("{flag}", FLAG), lambda v: v == 0.0, timeout=60
    )
    clock = ManualClock(datetime.now(UTC))
    bot = await make_bot(CONFIG, clock=clock, prometheus_url=proxy.url)
    cora = SlackUser(http, bot, "U0CORA")
    assert "now progressing at 5 %" in await cora.say("start checkout")
    watch = Watch(bot, clock, http)
    for _ in range(4):  # measured green a few times first
        data = await watch.tick(faulty=False)
    assert data["held_by"] == [] and data["gate_states"][0]["outcome"] == "pass", data

    for cycle in range(cycles):
        paged_before = len(pages(standin))
        # Down: nothing listens at Prometheus's address for ten simulated minutes.
        await proxy.down()
        went_down = clock.now()
        for _ in range(int(DOWN / TICK)):
            data = await watch.tick(faulty=True)
            (hold,) = data["held_by"]
            since = datetime.fromisoformat(hold["since"])
            waited = clock.now() - went_down
            if waited < GRACE:  # measured, held and shown, but nobody paged yet
                assert len(pages(standin)) == paged_before, f"paged after only {waited}"
        assert clock.now() - since >= GRACE
        assert len(pages(standin)) == paged_before + 1, "on-call is paged once per outage"
        page = pages(standin)[-1]
        assert "checkout is held at 5 %: gate error_rate metrics source down" in str(page)
        status = await cora.say("status checkout")
        assert "progressing at 5 %" in status and HELD in status, status
        assert sum(1 for p in posts(standin) if str(p.get("text", "")).startswith(STARTS)) == (
            cycle + 1
        ), "one thread line when the hold starts, not one a tick"

        # Slow: Prometheus answers, but only after the bot's timeout.
        await proxy.up()
        proxy.slow(3.0)
        for _ in range(slow_ticks):
            data = await watch.tick(faulty=True)
        assert "did not answer within 1s" in data["gate_states"][0]["detail"], data

        # Garbage: HTML, a 500, error JSON, nonsense shapes, a huge answer, one a tick.
        proxy.garbage()
        details = set()
        for _ in GARBAGE:
            data = await watch.tick(faulty=True)
            details.add(data["gate_states"][0]["detail"])
        assert len(details) >= len(GARBAGE) // 2, details  # each said what was wrong

        # Back: the hold ends at the next measurement.
        proxy.forward()
        data = await watch.tick(faulty=False)
        assert data["held_by"] == [], data
        assert data["gate_states"][0]["outcome"] == "pass", data
        if cycle < cycles - 1:
            for _ in range(4):
                await watch.tick(faulty=False)

    # Prometheus is back for good: the soak counts green time from now, then it advances.
    back = clock.now()
    while data["percent"] == 5:
        assert clock.now() - back <= SOAK + 4 * TICK, "did not go on once Prometheus was back"
        data = await watch.tick(faulty=False)
    assert clock.now() - back >= SOAK - TICK, "advanced before the soak was green"
    assert data["percent"] == 25
    advances = [e for e in data["events"] if e["verb"] == "advance"]
    assert len(advances) == 1 and advances[0]["source"] == "automatic"
    assert all(e["verb"] != "rollback" for e in data["events"])
    figures(
        "R3 prometheus failing",
        outage_cycles=cycles,
        ticks=watch.ticks,
        ticks_while_failing=watch.faulty_ticks,
        answers=dict(sorted(proxy.seen.items())),
        pages=len(pages(standin)),
        false_rollbacks=0,
        advances_while_failing=0,
        seconds=round(time.monotonic() - started, 1),
    )
