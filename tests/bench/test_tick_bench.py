"""The cost of one evaluation tick: 100 active rollouts of 3 gates each.

Run with `.venv/bin/pytest -q -m bench tests/bench -s`. The metrics source answers at once
(or after a simulated Prometheus latency), so the figures are the bot's own cost: reading
gate states, assessing, deciding and writing one transaction per rollout, on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import pytest

from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.domain.rollout import Start
from bot.services.rollouts import Actor
from tests.conftest import BotFactory

ROLLOUTS, GATES = 100, 3


class InstantSource:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.queries = 0

    async def measure(self, query: str) -> Measurement:
        self.queries += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        return Measurement((0.001,))


def config() -> str:
    gates = "\n".join(
        f"  g{i}:\n    query: 'metric_{i}{{{{flag=\"{{flag}}\"}}}}'\n    fail_above: 0.01\n"
        f"    for: 5m\n    interval: 30s"
        for i in range(GATES)
    )
    rollouts = "\n".join(
        f"  - {{name: r{n:03d}, flag: f{n:03d}, plan: safe, gates: [{', '.join(f'g{i}' for i in range(GATES))}]}}"  # noqa: E501
        for n in range(ROLLOUTS)
    )
    return f"channel: '#deployments'\ngates:\n{gates}\nrollouts:\n{rollouts}\n"


@pytest.mark.bench
@pytest.mark.parametrize("latency", [0.0, 0.02])
async def test_one_tick_of_100_rollouts_with_3_gates(make_bot: BotFactory, latency: float) -> None:
    clock = ManualClock()
    source = InstantSource(latency)
    bot = await make_bot(config(), clock=clock, metrics_source=source)
    for task in bot._tasks:  # drive the scheduler by hand: one tick at a time
        if task.get_name() == "scheduler":
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    for name in bot.service.specs:
        outcome = await bot.service.act(name, Start(), Actor("U0CORA", "slash"))
        assert outcome.ok
    times = []
    for _ in range(5):
        source.queries = 0
        start = time.perf_counter()
        ran = await bot.scheduler.run_due()
        times.append(time.perf_counter() - start)
        assert ran == ROLLOUTS and source.queries == ROLLOUTS * GATES
        await clock.advance(30)
    statuses = await bot.service.statuses()
    assert all(s.percent == 5 for s in statuses.values())
    median = statistics.median(times)
    print(
        f"\ntick of {ROLLOUTS} rollouts x {GATES} gates, source latency {latency * 1000:.0f} ms: "
        f"median {median * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms; {median / ROLLOUTS * 1000:.2f} ms per rollout"
    )
