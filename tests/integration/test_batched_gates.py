"""Gates shared by many rollouts are measured in one query a tick: a real Prometheus, behind
a proxy that records what it is asked, gets 3 queries for 50 rollouts sharing 3 gates, and
each rollout gets the value of its own flag — the same value its own query would read."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.domain.rollout import Start
from bot.services.rollouts import Actor
from storage.repository import Repository
from tests.conftest import BotFactory
from tests.support.fake_service import FakeService
from tests.support.fault_proxy import GARBAGE, FaultProxy
from tests.support.prometheus_server import PrometheusServer

ROLLOUTS = 50
SILENT = ROLLOUTS - 1  # the rollout whose flag serves no traffic: no series at all

ERRORS = (
    'sum(rate(http_requests_total{flag="{flag}",code="500"}[10s]))'
    ' / sum(rate(http_requests_total{flag="{flag}"}[10s]))'
)
LATENCY = (
    "histogram_quantile(0.95, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{flag="{flag}"}[10s])))'
)
TRAFFIC = 'sum(rate(http_requests_total{flag="{flag}"}[10s]))'


def flag(n: int) -> str:
    return f"checkout.v{n:02d}"  # a dot: the regex over the flags must escape it


CONFIG = (
    "channel: '#deployments'\n"
    "gates:\n"
    f"  errors:\n    query: '{ERRORS}'\n    fail_above: 0.5\n    for: 5m\n    interval: 30s\n"
    f"  latency:\n    query: '{LATENCY}'\n    fail_above: 10\n    for: 5m\n    interval: 30s\n"
    f"  traffic:\n    query: '{TRAFFIC}'\n    fail_below: 0.01\n    for: 5m\n    interval: 30s\n"
    "rollouts:\n"
    + "".join(
        f"  - {{name: r{n:02d}, flag: {flag(n)}, plan: safe, gates: [errors, latency, traffic]}}\n"
        for n in range(ROLLOUTS)
    )
)


async def _bot_ticked_by_hand(make_bot: BotFactory, url: str, clock: ManualClock) -> RolloutBot:
    bot = await make_bot(CONFIG, clock=clock, prometheus_url=url)
    for task in bot._tasks:  # the test runs each tick itself
        if task.get_name() == "scheduler":
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    for name in bot.service.specs:
        assert (await bot.service.act(name, Start(), Actor("U0CORA", "slash"))).ok
    return bot


async def _states(bot: RolloutBot) -> dict[tuple[str, str], tuple[str, float | None]]:
    async with bot.gates.reader() as session:
        rows = await Repository(session).gate_states(None)
    return {(r.rollout, r.gate): (r.outcome, r.value) for r in rows}


async def test_50_rollouts_sharing_3_gates_cost_3_queries_and_each_gets_its_own_value(
    make_bot: BotFactory,
    fake_service: FakeService,
    prometheus: PrometheusServer,
    proxy: FaultProxy,
) -> None:
    for n in range(SILENT):
        fake_service.set(flag(n), rps=100 + n, error_rate=n / 100, latency_s=0.01 * (n + 1))
    # The last flag with traffic has all three values in Prometheus before the tick.
    # The rates are steady (their window past the start of the traffic) before the tick.
    last = SILENT - 1
    await prometheus.wait_for_value(
        TRAFFIC.replace("{flag}", flag(last)),
        lambda v: v is not None and abs(v - (100 + last)) < 0.2,
        timeout=60,
    )
    clock = ManualClock()
    bot = await _bot_ticked_by_hand(make_bot, proxy.url, clock)
    proxy.queries.clear()

    assert await bot.scheduler.run_due() >= 1

    assert len(proxy.queries) == 3, proxy.queries  # one per gate, not 150
    assert all('flag=~"checkout\\\\.v00|' in q for q in proxy.queries), proxy.queries
    states = await _states(bot)
    for n in range(SILENT):
        name = f"r{n:02d}"
        assert {states[name, g][0] for g in ("errors", "latency", "traffic")} == {"pass"}
        # Its own traffic (flags differ by 1 request/s), within what a scrape's timing moves.
        assert states[name, "traffic"][1] == pytest.approx(100 + n, abs=0.4), name
        errors = states[name, "errors"][1]  # whole requests: within a request of n %
        assert errors is not None and abs(errors - n / 100) < 0.004, (name, errors)
        # Every request of a flag has one latency: its quantile reads the same at any time.
        own = await prometheus.query_value(LATENCY.replace("{flag}", flag(n)))
        assert states[name, "latency"][1] == pytest.approx(own, rel=1e-9), name
    silent = f"r{SILENT:02d}"
    assert {states[silent, g] for g in ("errors", "latency", "traffic")} == {("no_data", None)}
    statuses = await bot.service.statuses()
    assert [h.gate for h in statuses[silent].held_by] == ["errors", "latency", "traffic"]
    assert all(not s.held_by for name, s in statuses.items() if name != silent)

    # A failed batch is SOURCE_DOWN for every rollout it measured.
    proxy.garbage([a for a in GARBAGE if a.name == "http 500"])
    proxy.queries.clear()
    await clock.advance(30)
    assert await bot.scheduler.run_due() >= 1
    assert len(proxy.queries) == 3, proxy.queries
    states = await _states(bot)
    assert {outcome for outcome, _ in states.values()} == {"source_down"}
    assert len(states) == ROLLOUTS * 3


class GatedSource:
    """Answers every query with a green value, once `go` is set: a tick can be held in the
    middle of its measurements."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.asked = asyncio.Event()

    async def measure(self, query: str) -> Measurement:
        self.asked.set()
        await self.go.wait()
        return Measurement((0.001,))


TWO = (
    "channel: '#deployments'\n"
    "gates:\n  errors:\n    query: 'errors{flag=\"{flag}\"}'\n    fail_above: 0.5\n"
    "    for: 5m\n    interval: 30s\n"
    "rollouts:\n"
    "  - {name: first, flag: first_flag, plan: safe, gates: [errors]}\n"
    "  - {name: second, flag: second_flag, plan: safe, gates: [errors]}\n"
)


async def test_a_rollout_started_while_a_tick_runs_is_measured_by_the_next_one_at_once(
    make_bot: BotFactory,
) -> None:
    clock = ManualClock()
    source = GatedSource()
    bot = await make_bot(TWO, clock=clock, metrics_source=source)
    for task in bot._tasks:
        if task.get_name() == "scheduler":
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert (await bot.service.act("first", Start(), Actor("U0CORA", "slash"))).ok
    tick = asyncio.create_task(bot.scheduler.run_due())
    await asyncio.wait_for(source.asked.wait(), 60)  # the tick is measuring `first`
    assert (await bot.service.act("second", Start(), Actor("U0CORA", "slash"))).ok
    source.go.set()
    assert await tick == 1
    states = await _states(bot)
    assert set(states) == {("first", "errors")}  # the tick began before `second` started
    async with bot.gates.reader() as session:
        timer = await Repository(session).timer("gates")
    assert timer is not None and timer.due_at == clock.now()  # not 30 s later
    assert await bot.scheduler.run_due() == 1
    assert (await _states(bot))["second", "errors"] == ("pass", 0.001)
