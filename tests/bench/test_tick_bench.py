"""The cost of one evaluation tick: 100, 1,000 and 10,000 active rollouts of 3 gates each.

Run with `.venv/bin/pytest -q -m bench tests/bench/test_tick_bench.py -s`. The metrics
source answers at once, so the figures are the bot's own cost: reading gate states,
assessing, deciding and writing, on SQLite. Each figure is one tick (every timer due at
that moment, run until none is): core-seconds (`time.process_time`, the whole process),
wall seconds, the queries the metrics source was asked, and the SQL statements the
database ran (counted with a SQLAlchemy `before_cursor_execute` event). The outbox and
the scheduler's own loop are stopped, so nothing else runs in the process meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.config import Config
from bot.domain.assess import Measurement
from bot.domain.rollout import Pause, Resume, Start
from bot.prometheus import Grouped
from bot.services.rollouts import Actor
from bot.settings import Settings
from bot.standin.web_api import SlackStandIn
from tests.bench.fragments import write_fragment
from tests.conftest import bot_settings

GATES = 3
TICKS = 3
VALUE = 0.001

# Measured on this machine at commit affc3b5 (one timer, one transaction and one query per
# gate per rollout), with this benchmark's harness: the figures the change is judged by.
BEFORE = {
    100: "| 100 | 2.16 | 4.52 | 300 | 2,104 |",
    1_000: "| 1,000 | 18.5 | 34.2 | 3,000 | 21,022 |",
}


class InstantSource:
    """Answers every query at once with VALUE for each flag it asks about."""

    def __init__(self) -> None:
        self.queries = 0

    async def measure(self, query: str) -> Measurement:
        self.queries += 1
        return Measurement((VALUE,))

    async def measure_grouped(self, query: str, label: str) -> Grouped:
        import promql_parser

        self.queries += 1
        flags: set[str] = set()
        for node in _selectors(promql_parser.parse(query)):
            for matcher in node.matchers.matchers:
                if matcher.name == label:
                    flags |= set(matcher.value.split("|"))
        return Grouped({flag: (VALUE,) for flag in flags})


def _selectors(node: Any) -> Iterator[Any]:
    import promql_parser

    if isinstance(node, promql_parser.VectorSelector):
        yield node
    for child in ("expr", "lhs", "rhs", "vector_selector"):
        inner = getattr(node, child, None)
        if inner is not None:
            yield from _selectors(inner)
    for arg in getattr(node, "args", None) or ():
        yield from _selectors(arg)


def config(rollouts: int) -> Config:
    """Built from data rather than YAML text: 10,000 rollouts take more YAML nodes than
    the config file's guard against alias bombs lets through."""
    gates = {
        f"g{i}": {
            "query": f'sum(rate(metric_{i}{{flag="{{flag}}"}}[5m]))',
            "fail_above": 0.01,
            "for": "5m",
            "interval": "30s",
        }
        for i in range(GATES)
    }
    names = [f"g{i}" for i in range(GATES)]
    return Config.model_validate({
        "channel": "#deployments",
        "gates": gates,
        "rollouts": [
            {"name": f"r{n:05d}", "flag": f"f{n:05d}", "plan": "safe", "gates": names}
            for n in range(rollouts)
        ],
    })


@dataclass
class Tick:
    core: float
    wall: float
    queries: int
    statements: int
    commands: int = 0  # answered during one more tick
    slowest: float = 0.0  # the slowest of them, in seconds


class Statements:
    def __init__(self, bot: RolloutBot) -> None:
        self.count = 0
        event.listen(bot.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1


async def _stop_tasks(bot: RolloutBot, *names: str) -> None:
    for task in bot._tasks:
        if task.get_name() in names:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _one_tick(bot: RolloutBot) -> int:
    ran = total = 0
    while ran := await bot.scheduler.run_due():
        total += ran
    return total


@pytest.mark.bench
@pytest.mark.timeout(1800)
async def test_one_tick_at_100_1000_and_10000_rollouts(
    standin: SlackStandIn, tmp_path: Path
) -> None:
    rows = []
    for count in (100, 1_000, 10_000):
        settings = bot_settings(standin, f"sqlite+aiosqlite:///{tmp_path}/tick-{count}.db")
        tick = await _measure(settings, count)
        print(
            f"\ntick of {count} rollouts x {GATES} gates: {tick.core:.3f} core-s, "
            f"{tick.wall:.3f} s wall, {tick.queries} queries, {tick.statements} statements"
        )
        rows.append(
            f"| {count:,} | {tick.core:.3g} | {tick.wall:.3g} | {tick.queries:,} "
            f"| {tick.statements:,} | {tick.commands} | {tick.slowest:.2f} |"
        )
    head = (
        "| rollouts × 3 gates | core-seconds | wall seconds | Prometheus queries "
        "| SQL statements |\n|---:|---:|---:|---:|---:|"
    )
    after = (
        "| rollouts × 3 gates | core-seconds | wall seconds | Prometheus queries "
        "| SQL statements | commands during a tick | slowest command (s) |"
        "\n|---:|---:|---:|---:|---:|---:|---:|"
    )
    write_fragment(
        "P3",
        "One gate tick of N active rollouts sharing 3 gates, on SQLite, the metrics source "
        f"answering at once (median of {TICKS} ticks; core-seconds are "
        "`time.process_time` of the whole process). "
        "`.venv/bin/pytest -q -m bench tests/bench/test_tick_bench.py -s`\n\n"
        "Before (one timer, transaction and query per gate per rollout):\n\n"
        f"{head}\n" + "\n".join(BEFORE.values()) + "\n\n"
        "After (one `gates` timer; each gate one query grouped by flag; rows read in one "
        "query and written in chunks). Commands: `/rollout pause` and `resume`, one after "
        "the other, for as long as one more tick runs; every one answered, none refused "
        "as busy:\n\n"
        f"{after}\n" + "\n".join(rows),
    )


async def _measure(settings: Settings, count: int) -> Tick:
    clock = ManualClock()
    source = InstantSource()
    bot = RolloutBot(config(count), settings, clock=clock, metrics_source=source)
    await bot.start()
    try:
        return await _ticks(bot, clock, source, count)
    finally:
        await bot.stop()


async def _ticks(bot: RolloutBot, clock: ManualClock, source: InstantSource, count: int) -> Tick:
    await _stop_tasks(bot, "scheduler", "outbox")  # one tick at a time, and nothing else
    for name in bot.service.specs:
        outcome = await bot.service.act(name, Start(), Actor("U0CORA", "slash"))
        assert outcome.ok
    statements = Statements(bot)
    ticks = []
    for _ in range(TICKS):
        source.queries, statements.count = 0, 0
        core, wall = time.process_time(), time.perf_counter()
        assert await _one_tick(bot) >= 1
        ticks.append(
            Tick(
                time.process_time() - core,
                time.perf_counter() - wall,
                source.queries,
                statements.count,
            )
        )
        assert source.queries in (GATES, count * GATES)
        await clock.advance(30)
    commands, slowest = await _commands_during_a_tick(bot, clock)
    statuses = await bot.service.statuses()
    assert all(s.percent == 5 for s in statuses.values())
    async with bot.gates.sessions() as session:
        from storage.repository import Repository

        states = await Repository(session).gate_states(bot.service.specs)
    assert len(states) == count * GATES and all(s.value == VALUE for s in states)
    return Tick(
        statistics.median(t.core for t in ticks),
        statistics.median(t.wall for t in ticks),
        max(t.queries for t in ticks),
        max(t.statements for t in ticks),
        commands,
        slowest,
    )


async def _commands_during_a_tick(bot: RolloutBot, clock: ManualClock) -> tuple[int, float]:
    """Commands on one rollout while the next tick runs: each waits for the write lock
    (the busy timeout) at most while one chunk is written, and none fails."""
    await clock.advance(30)
    name = next(iter(bot.service.specs))
    tick = asyncio.create_task(bot.scheduler.run_due())
    answered, slowest = 0, 0.0
    while not tick.done():
        command = Pause() if answered % 2 == 0 else Resume()
        began = time.perf_counter()
        outcome = await bot.service.act(name, command, Actor("U0CORA", "slash"))
        slowest = max(slowest, time.perf_counter() - began)
        assert outcome.ok, outcome.text
        answered += 1
    assert await tick >= 1
    if answered % 2:
        assert (await bot.service.act(name, Resume(), Actor("U0CORA", "slash"))).ok
    return answered, slowest
