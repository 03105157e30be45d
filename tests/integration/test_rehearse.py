"""`rehearse` over a real Prometheus that holds seven days of history, backfilled with
`promtool tsdb create-blocks-from openmetrics`: one flag has a 20-minute error-rate incident
at a known time, the other a quiet week."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.prometheus_history import CHUNK_POINTS
from bot.services.rehearsals import Ask, Rehearsals, rehearsals_for
from tests.support.backfill import backfilled_prometheus, request_counters
from tests.support.prometheus_server import PrometheusServer

STEP = timedelta(seconds=30)
DAY = timedelta(days=1)
WINDOW = timedelta(minutes=5)
# The period ends at the start of the test, on the 30 s grid; the data starts an hour
# before it, so `rate()` has samples at the period's first moment.
NOW = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) // 30 * 30, UTC)
WEEK_START = NOW - 7 * DAY
INCIDENT = WEEK_START + 2 * DAY + timedelta(hours=12)  # at 25 % under the safe plan
INCIDENT_END = INCIDENT + timedelta(minutes=20)
QUIET_FAILING = 0.001  # 0.1 % of requests fail on an ordinary day
INCIDENT_FAILING = 0.05

CONFIG = """
prometheus: {url: %(url)s}
gates:
  error_rate:
    query: >-
      sum(rate(http_requests_total{flag="{flag}",code="500"}[1m]))
      / sum(rate(http_requests_total{flag="{flag}"}[1m]))
    fail_above: {canary: 0.005, progressive: 0.01, final: 0.01}
    for: {canary: 5m, progressive: 5m, final: 10m}
    interval: 30s
rollouts:
  - {name: checkout, flag: checkout_v2, plan: safe, gates: [error_rate]}
  - {name: search, flag: search_v2, plan: safe, gates: [error_rate]}
"""


def checkout(at: datetime) -> tuple[float, float]:
    return 100.0, INCIDENT_FAILING if INCIDENT <= at < INCIDENT_END else QUIET_FAILING


def search(at: datetime) -> tuple[float, float]:
    return 80.0, QUIET_FAILING


@pytest.fixture(scope="module")
def history() -> Iterator[PrometheusServer]:
    text = request_counters(
        {"checkout_v2": checkout, "search_v2": search}, WEEK_START - timedelta(hours=1), NOW, STEP
    )
    server = asyncio.run(backfilled_prometheus(text))
    try:
        yield server
    finally:
        server.close()


def rehearsals(url: str) -> Rehearsals:
    return rehearsals_for(parse_config(CONFIG % {"url": url}), url, lambda: NOW)


async def test_the_week_rolls_back_at_the_incident_after_the_advances_its_soaks_allow(
    history: PrometheusServer,
) -> None:
    answer = await rehearsals(history.url).rehearse(Ask("checkout", 7 * DAY))
    result = answer.rehearsal
    moves = [(s.verb, s.from_percent, s.to_percent, s.at) for s in result.changes()]
    assert moves[:3] == [
        ("start", 0, 5, WEEK_START),
        ("advance", 5, 10, WEEK_START + DAY),
        ("advance", 10, 25, WEEK_START + 2 * DAY),
    ]
    back = result.rolled_back
    assert back is not None and back is result.changes()[-1]
    # Red from the first sample that sees the incident, rolled back when its 5 minutes end.
    assert INCIDENT + WINDOW <= back.at <= INCIDENT + WINDOW + STEP
    gate = back.gates[0]
    assert gate.name == "error_rate" and gate.threshold == 0.01 and gate.window == WINDOW
    assert gate.value == pytest.approx(INCIDENT_FAILING, rel=0.01)
    advance = result.changes()[1]
    assert advance.gates[0].value == pytest.approx(QUIET_FAILING, rel=0.01)
    assert result.full_at is None
    text = "\n".join(answer.lines)
    assert "It would not have reached 100 %: rolled back from 25 %" in text
    assert "ROLL BACK 25 → 0 %" in text and "error_rate 0.05 (threshold 0.01, window 5m)" in text
    # The week was read in chunks under Prometheus's points limit, and every sample is there.
    stats = answer.stats[0]
    assert stats.expected > CHUNK_POINTS and stats.no_data_share == 0
    canary = stats.tiers[0]
    # The 20 minutes at 30 s, from the first sample after it starts to the first one after
    # it ends: the 1 m rate window trails the incident by a sample.
    assert canary.red == 41 and canary.episodes == 1
    assert canary.worst == pytest.approx(INCIDENT_FAILING, rel=0.01)
    assert "canary (threshold 0.005): p50 0.001, p95 0.001, max 0.05" in text


async def test_the_quiet_week_reaches_100_when_the_plan_says(history: PrometheusServer) -> None:
    answer = await rehearsals(history.url).rehearse(Ask("search", 7 * DAY))
    result = answer.rehearsal
    percents = [(s.to_percent, s.at - WEEK_START) for s in result.changes()]
    assert percents[:6] == [(5, 0 * DAY), (10, DAY), (25, 2 * DAY), (50, 3 * DAY), (75, 4 * DAY),
                            (100, 5 * DAY)]  # fmt: skip
    assert result.full_at == WEEK_START + 5 * DAY
    assert result.rolled_back is None
    assert "100 % reached" in "\n".join(answer.lines)


async def test_a_period_prometheus_does_not_hold_says_how_far_back_it_goes(
    history: PrometheusServer,
) -> None:
    ten_days_ago = NOW - 10 * DAY
    answer = await rehearsals(history.url).rehearse(Ask("search", 7 * DAY, start=ten_days_ago))
    text = "\n".join(answer.lines)
    first = WEEK_START - timedelta(hours=1) + STEP  # rate() needs a second sample
    assert answer.stats[0].first_sample == first
    assert f"Prometheus holds error_rate only from {first:%a %d %b %H:%M} (it keeps 60d)" in text
    # The first 3 days less an hour of the 7 hold no data.
    assert answer.stats[0].no_data_share == pytest.approx(71 / 168, abs=0.001)
    assert "42.3 % of the period without data" in text
    assert "would not have reached 100 %" in text


def test_the_terminal_command_prints_the_rehearsal(
    history: PrometheusServer, tmp_path: Path
) -> None:
    config = tmp_path / "rollouts.yml"
    config.write_text(CONFIG % {"url": history.url})
    chart = tmp_path / "chart.png"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "rehearse", "--config", str(config), "search",
         "--over", "2d", "--chart", str(chart)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Rehearsal of search over 2d" in done.stdout
    assert "advance 5 → 10 %" in done.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wrong = subprocess.run(
        [sys.executable, "-m", "bot", "rehearse", "--config", str(config), "search",
         "--plan", "nope"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert wrong.returncode == 2 and "No plan is named nope" in wrong.stderr
