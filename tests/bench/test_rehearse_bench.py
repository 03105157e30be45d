"""Rehearsing 7 days x 3 gates at a 30 s interval, end to end: the range queries against a
real Prometheus backfilled with the week (`promtool`), the replay through decide, the
per-tier statistics and the rendered answer. Target: under 10 s on this machine.

Run with `.venv/bin/pytest -q -m bench tests/bench/test_rehearse_bench.py -s`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import parse_config
from bot.services.rehearsals import Ask, rehearsals_for
from tests.support.backfill import backfilled_prometheus, request_counters
from tests.support.prometheus_server import PrometheusServer

STEP = timedelta(seconds=30)
NOW = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) // 30 * 30, UTC)
START = NOW - timedelta(days=7)
TARGET_SECONDS = 10.0
CONFIG = """
prometheus: {url: %(url)s}
gates:
  error_rate:
    query: >-
      sum(rate(http_requests_total{flag="{flag}",code="500"}[1m]))
      / sum(rate(http_requests_total{flag="{flag}"}[1m]))
    fail_above: {canary: 0.005, progressive: 0.01, final: 0.01}
    interval: 30s
  errors_per_second:
    query: 'sum(rate(http_requests_total{flag="{flag}",code="500"}[1m]))'
    fail_above: 1
    interval: 30s
  traffic:
    query: 'sum(rate(http_requests_total{flag="{flag}"}[1m]))'
    fail_below: 10
    interval: 30s
rollouts:
  - {name: checkout, flag: checkout_v2, plan: safe, gates: [error_rate, errors_per_second, traffic]}
"""


@pytest.fixture(scope="module")
def week() -> Iterator[PrometheusServer]:
    text = request_counters(
        {"checkout_v2": lambda at: (100.0, 0.001)}, START - timedelta(hours=1), NOW, STEP
    )
    server = asyncio.run(backfilled_prometheus(text))
    try:
        yield server
    finally:
        server.close()


@pytest.mark.bench
async def test_rehearsing_7_days_of_3_gates_at_30s(week: PrometheusServer) -> None:
    rehearsals = rehearsals_for(parse_config(CONFIG % {"url": week.url}), week.url, lambda: NOW)
    times = []
    for _ in range(3):
        began = time.perf_counter()
        answer = await rehearsals.rehearse(Ask("checkout", timedelta(days=7)))
        times.append(time.perf_counter() - began)
    assert answer.rehearsal.full_at == START + timedelta(days=5)
    assert all(s.no_data_share == 0 for s in answer.stats) and len(answer.stats) == 3
    ticks = sum(s.expected for s in answer.stats)
    median = statistics.median(times)
    print(
        f"\nrehearse 7 days x 3 gates at 30 s ({ticks} samples, {len(answer.rehearsal.steps)} "
        f"decisions): median {median:.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
        f"(target < {TARGET_SECONDS:g} s)"
    )
    assert median < TARGET_SECONDS
