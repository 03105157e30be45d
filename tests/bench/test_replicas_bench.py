"""One replica and three on one PostgreSQL database: signed commands per second through
them, the time from a clock step to everything it made due being done (gate tick,
checkpoint, deliveries), and how long after a SIGKILL of the replica in the middle of a gate
tick the gates are measured again (three: a survivor takes over; one: only a restart does).

Run with `.venv/bin/pytest -q -m bench tests/bench/test_replicas_bench.py -s`.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.standin.web_api import SlackStandIn
from tests.bench.fragments import write_fragment
from tests.support.replicas import (
    FLAG,
    GATE_TIMER,
    Metrics,
    Replicas,
    replica_config,
    service_metrics,
)

COMMANDS, IN_FLIGHT, STEPS = 300, 12, 6
FIGURES: dict[int, dict[str, float]] = {}


@pytest.fixture
async def metrics() -> AsyncIterator[Metrics]:
    async with service_metrics(FLAG) as running:
        yield running


async def commands_per_second(cluster: Replicas) -> float:
    """`/rollout status checkout`, signed, IN_FLIGHT at a time, spread over the replicas."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with slots:
            assert "checkout" in await cluster.say("U0FORGE", "status checkout")

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(one() for _ in range(COMMANDS)))
    return COMMANDS / (loop.time() - started)


async def step_seconds(cluster: Replicas) -> list[float]:
    """Real seconds from each 30 s clock step until nothing is due or pending."""
    loop = asyncio.get_running_loop()
    seconds = []
    for _ in range(STEPS):
        started = loop.time()
        await cluster.tick()
        seconds.append(loop.time() - started)
    return seconds


@pytest.mark.bench
@pytest.mark.parametrize("count", [1, 3])
async def test_one_replica_and_three(
    tmp_path: Path, standin: SlackStandIn, metrics: Metrics, count: int
) -> None:
    proxy = metrics.proxy
    async with Replicas.running(
        tmp_path, standin, replica_config(proxy.url), proxy, count=count
    ) as cluster:
        assert "progressing at 5 %" in await cluster.say("U0CORA", "start checkout")
        await cluster.settled()
        rate = await commands_per_second(cluster)
        steps = await step_seconds(cluster)
        kill = await cluster.kill_holder(GATE_TIMER, timedelta(seconds=30))
        if count == 1:  # nobody is left to take over: the gates wait for the restart
            await kill.victim.start(within=60)
        recovered = (await cluster.next_gate_query(kill)).seconds
    FIGURES[count] = {
        "rate": rate,
        "step_p50": statistics.median(steps),
        "step_max": max(steps),
        "recovered": recovered,
    }
    print(f"{count} replica(s): {FIGURES[count]}")
    if len(FIGURES) == 2:
        write_fragment("replicas", report())


def report() -> str:
    one, three = FIGURES[1], FIGURES[3]
    rows = [
        ("signed `/rollout status` commands per second "
         f"({COMMANDS}, {IN_FLIGHT} in flight, round-robin)",
         f"{one['rate']:.0f}", f"{three['rate']:.0f}"),
        ("30 s clock step to nothing due or pending: p50 / max "
         f"({STEPS} steps: gate tick, checkpoints, deliveries)",
         f"{one['step_p50']:.2f} / {one['step_max']:.2f} s",
         f"{three['step_p50']:.2f} / {three['step_max']:.2f} s"),
        ("SIGKILL mid gate tick to the next gate query",
         f"{one['recovered']:.2f} s (restart)", f"{three['recovered']:.2f} s (a survivor)"),
    ]
    lines = [
        "`serve` processes on one PostgreSQL database, one stepped clock, the Slack stand-in "
        "and a real Prometheus; the stepped clock does not move between a kill and the "
        "next query. `.venv/bin/pytest -q -m bench tests/bench/test_replicas_bench.py`.",
        "",
        "| | one replica | three replicas |",
        "| --- | --- | --- |",
        *(f"| {what} | {a} | {b} |" for what, a, b in rows),
    ]
    return "\n".join(lines)
