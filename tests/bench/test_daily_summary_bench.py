"""How long the daily summary takes for 50 active rollouts (`make bench`): gathering each
rollout's status, gates, events and 24 h of gate history, rendering the Block Kit message,
and rendering the charts. Also writes docs/daily-chart.png, the chart a reader can look at."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.domain.rollout import Advance, Start
from bot.services.checkpoints import MAX_CHARTS
from bot.services.rollouts import Actor
from tests.conftest import BotFactory
from tests.integration.test_daily_summary import ERROR_QUERY, P95_QUERY
from tests.support.recorded_metrics import RecordedSource

ROLLOUTS = 50
DOCS = Path(__file__).parents[2] / "docs"
RECORDED_FLAG = "phase_4_deployment"  # the flag the recorded series were queried with


def flag(i: int) -> str:
    return f"flag_{i:02d}"  # a flag belongs to one rollout


def config() -> str:
    gates = f"""
gates:
  error_rate:
    query: '{ERROR_QUERY.replace(RECORDED_FLAG, "{flag}")}'
    fail_above: 0.05
  p95_latency:
    query: '{P95_QUERY.replace(RECORDED_FLAG, "{flag}")}'
    fail_above: {{canary: 0.25, progressive: 0.3, final: 0.5}}
"""
    rollouts = "\n".join(
        f"  - {{name: r-{i:02d}, flag: {flag(i)}, plan: safe, "
        "gates: [error_rate, p95_latency]}"
        for i in range(ROLLOUTS)
    )
    return f'channel: "#deployments"\n{gates}\nrollouts:\n{rollouts}\n'


@pytest.mark.bench
async def test_daily_summary_for_50_rollouts(make_bot: BotFactory) -> None:
    clock = ManualClock()
    recorded = {ERROR_QUERY: "error_rate", P95_QUERY: "p95_latency"}
    queries = {
        query.replace(RECORDED_FLAG, flag(i)): name
        for query, name in recorded.items()
        for i in range(ROLLOUTS)
    }
    source = RecordedSource(clock, queries)  # every rollout's gates read the recorded week
    bot = await make_bot(config(), clock=clock, metrics_source=source)
    cora = Actor("U0CORA", "slash")
    for name in bot.service.specs:
        assert (await bot.service.act(name, Start(), cora)).ok
    await clock.advance(timedelta(hours=6))
    for name in bot.service.specs:
        await bot.service.act(name, Advance(10, force=True, reason="bench"), cora)
    await clock.advance(timedelta(hours=8))
    for name in list(bot.service.specs)[:5]:
        await bot.service.act(name, Advance(25, force=True, reason="bench"), cora)
    await clock.advance(timedelta(hours=10))

    started = time.perf_counter()
    message, charts = await bot.checkpoints.daily_summary(clock.now())
    took = time.perf_counter() - started
    assert len(charts) == min(ROLLOUTS, MAX_CHARTS)
    assert len(message["blocks"]) <= 50
    assert message["blocks"][-1]["elements"][0]["text"] == (
        f"Charts in the thread for the first {MAX_CHARTS} of {ROLLOUTS} rollouts."
    )
    started = time.perf_counter()
    views = [
        await bot.checkpoints.view(spec, since=clock.now() - timedelta(hours=24), now=clock.now())
        for spec in bot.service.specs.values()
    ]
    gather = time.perf_counter() - started
    print(
        f"\ndaily summary for {ROLLOUTS} active rollouts (2 gates each): {took:.2f} s in all"
        f" — gathering {ROLLOUTS} views {gather:.2f} s, {len(charts)} charts"
        f" {(took - gather) / len(charts):.2f} s each"
    )
    assert all(v is not None for v in views)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "daily-chart.png").write_bytes(charts[0].png)
