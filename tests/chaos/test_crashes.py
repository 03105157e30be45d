"""R1, crashes: `rollout-bot serve` SIGKILLed at random moments through a compressed week —
checkpoints, daily summaries, automatic advances, a breach, the rollback, a page that
escalates and is acknowledged — and restarted each time on the same database, ends exactly
as the same week without a kill, on SQLite and on PostgreSQL alike: the same Slack
transcript (ids and timestamps left out), the same command replies, rollout row, audit log
and incidents. So no message, page or decision was lost or doubled.

The gates read a real Prometheus holding the week's traffic (backfilled with promtool),
asked for each value at the stepped clock's time; the clock moves an hour a step, a
minute a step around the breach (`tests.support.week_run`). Each kill lands a random
fraction of the time the undisturbed run took at that step, so most catch the bot at work.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from tests.chaos.conftest import figures, scaled
from tests.conftest import fresh_postgres
from tests.support.backfill import backfilled_prometheus, request_counters
from tests.support.prometheus_server import PrometheusServer
from tests.support.week_run import Result, Say, Step, Tick, WeekRun

FLAG = "checkout_v3"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
ERROR_RATIO = (
    'sum(rate(http_requests_total{flag="{flag}",code="500"}[5m]))'
    ' / sum(rate(http_requests_total{flag="{flag}"}[5m]))'
)


def week_start(today: date) -> datetime:
    """10:00 UTC on the Monday two weeks before this one: inside Prometheus's retention."""
    monday = today - timedelta(days=today.weekday() + 14)
    return datetime.combine(monday, time(10, 0), UTC)


T0 = week_start(datetime.now(UTC).date())
BREACH = T0 + 4 * DAY + 4 * HOUR  # Friday 14:00, at 75 %
END = T0 + 7 * DAY


def traffic(at: datetime) -> tuple[float, float]:
    """20 requests a second, 0.2 % failing; 5 % failing in the breach's hour."""
    return 20.0, 0.05 if BREACH <= at < BREACH + HOUR else 0.002


def config(prometheus_url: str) -> str:
    return f"""
channel: "#deployments"
timezone: UTC
prometheus: {{url: "{prometheus_url}", timeout: 10s}}
roles: {{leads: [U0CORA], operators: [U0FORGE, U0HUDSON]}}
oncall:
  chain:
    - {{user: U0FORGE, wait: 5m}}
    - {{user: U0HUDSON, wait: 5m}}
checkpoints:
  - {{until: 6h, every: 1h}}
  - {{every: 6h}}
daily_summary: "09:00"
gates:
  error_rate:
    query: '{ERROR_RATIO}'
    fail_above: 0.01
    for: 5m
    interval: 1m
plans:
  week:
    stages:
      - {{percent: 5, soak: 24h}}
      - {{percent: 10, soak: 24h}}
      - {{percent: 25, soak: 24h}}
      - {{percent: 50, soak: 24h}}
      - {{percent: 75, soak: 24h}}
      - {{percent: 100, soak: 48h}}
rollouts:
  - {{name: checkout, flag: {FLAG}, plan: week, gates: [error_rate], advance: auto}}
"""


def week() -> list[Step]:
    """Start on Monday 10:00; an hour a step, a minute a step from just before the breach
    until the page is acknowledged and a while after; a look at the status midweek and at
    the end. Seven days in all."""
    steps: list[Step] = [Say("U0CORA", "start checkout")]
    at = T0
    while at + HOUR < BREACH - 2 * MINUTE:
        at += HOUR
        steps.append(Tick(at))
        if at == T0 + 2 * DAY + 2 * HOUR:
            steps.append(Say("U0FORGE", "status checkout"))
    at = BREACH - 2 * MINUTE
    while at < BREACH + 20 * MINUTE:
        steps.append(Tick(at))
        if at == BREACH + 13 * MINUTE:  # Forge paged at the rollback, Hudson 5 min later
            steps.append(Say("U0HUDSON", "ack"))
        at += MINUTE
    at = BREACH + HOUR
    while at <= END:
        steps.append(Tick(at))
        at += HOUR
    steps.append(Say("U0CORA", "status checkout"))
    return steps


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusServer]:
    text = request_counters({FLAG: traffic}, T0 - HOUR, END + HOUR, timedelta(seconds=30))
    server = await backfilled_prometheus(text)
    try:
        yield server
    finally:
        server.close()


def differences(clean: Result, killed: Result) -> list[str]:
    """Where the run with kills differs from the run without: every place, briefly."""
    found = []
    for channel in sorted(clean.transcript.keys() | killed.transcript.keys()):
        a, b = clean.transcript.get(channel, []), killed.transcript.get(channel, [])
        if len(a) != len(b):
            found.append(f"{channel}: {len(a)} messages without kills, {len(b)} with")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                found.append(f"{channel} message {i}:\n  {json.dumps(x)[:400]}\n  "
                             f"{json.dumps(y)[:400]}")
                break
    for name in ("replies", "rollout", "audit", "incidents"):
        if getattr(clean, name) != getattr(killed, name):
            found.append(f"{name}:\n  {getattr(clean, name)}\n  {getattr(killed, name)}")
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str | None, ...]]:
    """Two fresh databases of one kind, for the week without kills and the week with:
    None is a SQLite file of each run's own."""
    if request.param == "sqlite":
        yield None, None
        return
    async with fresh_postgres() as undisturbed, fresh_postgres() as killed:
        yield undisturbed, killed


async def test_a_week_killed_at_random_ends_as_the_week_undisturbed(
    tmp_path: Path, prometheus: PrometheusServer, databases: tuple[str | None, ...]
) -> None:
    steps = week()
    text = config(prometheus.url)
    clean = await WeekRun(tmp_path / "undisturbed", text, databases[0]).through(T0, steps)

    # The week happened: advances on time, checkpoints, a summary each morning, the
    # breach rolled back and paged, the page escalated and acknowledged.
    thread_and_channel = [
        m["text"] for messages in clean.transcript.values() for m in messages
    ]
    def count(words: str) -> int:
        return sum(words in t for t in thread_and_channel)
    assert [e["to_percent"] for e in clean.audit] == [5, 10, 25, 50, 75, 0], clean.audit
    assert clean.audit[-1]["actor"] != "U0CORA" and clean.rollout["state"] == "rolled_back"
    assert count("Checkpoint") >= 20, thread_and_channel
    assert count("Daily rollout summary") == 7, thread_and_channel
    pages = {channel: [m["text"] for m in messages]
             for channel, messages in clean.transcript.items() if channel.startswith("D")}
    assert len(pages) == 2 and all(len(texts) == 1 for texts in pages.values()), pages
    assert clean.replies[-2].startswith("Acknowledged incident #1"), clean.replies
    assert [i["acked_by"] for i in clean.incidents] == ["U0HUDSON"], clean.incidents

    seed = int(os.environ.get("CHAOS_SEED", "20261202"))
    rng = random.Random(seed)
    ticks = [i for i, step in enumerate(steps) if isinstance(step, Tick)]
    count_kills = scaled(5, 100)
    chosen = sorted(rng.sample(ticks, min(count_kills, len(ticks))))
    kills = {i: rng.uniform(0, clean.settle_seconds[i]) for i in chosen}
    killed = await WeekRun(tmp_path / "killed", text, databases[1]).through(T0, steps, kills)

    messages = sum(len(m) for m in clean.transcript.values())
    figures(
        f"R1 crashes on {'PostgreSQL' if databases[0] else 'SQLite'}",
        seed=seed,
        steps=len(steps),
        kills=killed.kills,
        restarts=len(killed.restart_seconds),
        kills_that_caught_work_in_flight=killed.caught_in_flight,
        messages_compared=messages,
        audit_events_compared=len(clean.audit),
        posts_undisturbed=clean.posts,
        posts_killed=killed.posts,
        lookups_before_a_retry=killed.lookups,
        restart_s_median=f"{sorted(killed.restart_seconds)[len(killed.restart_seconds) // 2]:.2f}"
        if killed.restart_seconds else "-",
        undisturbed_s=f"{clean.seconds:.0f}",
        killed_s=f"{killed.seconds:.0f}",
    )
    assert killed.kills == len(chosen)
    assert differences(clean, killed) == []
    # Nothing posted twice, even out of sight: as many posts as the undisturbed run made.
    assert killed.posts == clean.posts
