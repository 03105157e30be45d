"""P1b: command latency while an alert storm and a 1,000-rollout gate tick run
(`make bench`).

The bot runs as its own process on a SQLite file with 1,000 started rollouts (started
before it opens the file), each with one gate measured by a real Prometheus, on a stepped
clock (`serve --clock-file`): their first gate tick falls one interval after the start. The
commands come from wrk (20 in flight); the storm from this process, paced at 2,000 alerts
a second to `/alertmanager` (100 notifications of 20 alerts, each its own group); and the
tick from one step of the clock by the gates' interval, which makes all 1,000 rollouts'
gates due at once. The same commands are timed first with neither running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import delete

from bot.clock import ManualClock, write_clock_file
from bot.config import parse_config
from bot.domain.rollout import Start
from bot.services.rollouts import Actor, RolloutService
from bot.standin.web_api import SlackStandIn
from storage.db import create_engine, migrate, sessionmaker
from storage.models import OutboxRow
from tests.bench import commands_floor as floor
from tests.bench.fragments import write_fragment
from tests.bench.wrk_load import Load, available, run_wrk
from tests.conftest import SECRET
from tests.support.bot_process import BotProcess
from tests.support.incidents import alert, webhook
from tests.support.prometheus_server import PrometheusServer

ROLLOUTS = [f"r{n:04d}" for n in range(1000)]
NAMED = "r0007"
ALERTS_PER_SECOND, PER_NOTIFICATION = 2000, 20
INTERVAL = timedelta(seconds=30)
SECONDS = 8
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def progress(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)


def config(prometheus_url: str) -> str:
    listed = "\n".join(
        f"  - {{name: {n}, flag: flag_{n}, gates: [errors]}}" for n in ROLLOUTS
    )
    return (
        f"prometheus: {{url: '{prometheus_url}'}}\n"
        "oncall:\n  chain:\n    - {user: U0FORGE, wait: 5m}\n"
        "gates:\n  errors:\n    query: 'vector(0.001)'\n    fail_above: 0.01\n"
        f"    for: 5m\n    interval: {int(INTERVAL.total_seconds())}s\n"
        f"rollouts:\n{listed}\n"
    )


async def seed(database: Path, config_text: str) -> None:
    """Every rollout started at START, written straight to the database the bot then opens
    (its gate timers follow at its start). Their Slack messages are dropped: the bench is
    about the commands during the storm and the tick, not about posting 2,000 messages."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await migrate(engine)
        sessions = sessionmaker(engine)
        service = RolloutService(
            sessions, parse_config(config_text).specs(), "#deployments", ManualClock(START)
        )
        await service.prepare()
        for name in ROLLOUTS:
            outcome = await service.act(name, Start(), Actor("U0CORA", "slash"))
            assert outcome.ok, outcome.text
        async with sessions() as session, session.begin():
            await session.execute(delete(OutboxRow))
    finally:
        await engine.dispose()


class Storm:
    """Notifications of 20 alerts each, paced to ALERTS_PER_SECOND, none awaited before
    the next is due."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/alertmanager"
        self.sent = self.taken = self.failed = 0
        self.seconds = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        per_second = ALERTS_PER_SECOND / PER_NOTIFICATION
        started = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                due = int((time.perf_counter() - started) * per_second)
                while self.sent < due:
                    task = asyncio.create_task(self._send(http, self.sent))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    self.sent += 1
                await asyncio.sleep(0.01)
            self.seconds = time.perf_counter() - started
            if pending:
                await asyncio.wait(pending, timeout=60)

    async def _send(self, http: aiohttp.ClientSession, n: int) -> None:
        alerts = [
            alert(f"Storm{n}", f"{n:06d}{i:03d}", service=f"svc-{n % 50}")
            for i in range(PER_NOTIFICATION)
        ]
        body = json.dumps(webhook(f'{{}}:{{alertname="Storm{n}"}}', alerts)).encode()
        try:
            async with http.post(
                self.url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                if response.status == 200:
                    self.taken += 1
                else:
                    self.failed += 1
        except aiohttp.ClientError:
            self.failed += 1


def measured_since(database: Path, moment: datetime) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        naive = moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        row = db.execute("SELECT count(*) FROM gate_states WHERE measured_at >= ?", (naive,))
        return int(row.fetchone()[0])


async def tick_done(database: Path, tick_at: datetime) -> tuple[int, float]:
    """How many rollouts the tick measured, and in how many seconds: until all are, or the
    count has not grown for 120 s (a tick that failed, on a database too busy, runs again
    only after its lease, and the stepped clock stands still). The gate does not batch, so
    the tick asks Prometheus once per rollout before it writes its first chunk."""
    started = last_growth = time.monotonic()
    ticked = 0
    while ticked < len(ROLLOUTS) and time.monotonic() - last_growth < 120:
        await asyncio.sleep(0.25)
        now_ticked = await asyncio.to_thread(measured_since, database, tick_at)
        if now_ticked > ticked:
            ticked, last_growth = now_ticked, time.monotonic()
    return ticked, last_growth - started


@pytest.mark.bench
@pytest.mark.timeout(900)
@pytest.mark.skipif(not available(), reason="needs wrk (apt-get install wrk)")
async def test_commands_while_an_alert_storm_and_a_large_tick_run(
    tmp_path: Path, standin: SlackStandIn
) -> None:
    work = floor.artifacts(tmp_path)
    clock_file = tmp_path / "clock"
    write_clock_file(clock_file, START)
    prometheus = PrometheusServer(wait_for_targets=False)
    await prometheus.start()
    text = config(prometheus.url)
    await seed(tmp_path / "bot.db", text)
    bot = BotProcess(tmp_path, standin, text, clock_file=clock_file)
    await bot.start()
    quiet: dict[str, Load] = {}
    stormy: dict[str, Load] = {}
    storm = Storm(bot.url)
    try:
        progress("the bot is up; quiet commands")
        texts = [f"status {NAMED}", "help"]
        for text in texts:
            quiet[text] = await run_wrk(bot.url, floor.same(text), SECRET, work, seconds=SECONDS)
        progress("the storm and the tick")
        stop = asyncio.Event()
        storming = asyncio.create_task(storm.run(stop))
        tick_at = START + INTERVAL
        write_clock_file(clock_file, tick_at)  # every rollout's gate is due now
        ticking = asyncio.create_task(tick_done(tmp_path / "bot.db", tick_at))
        for text in texts:
            stormy[text] = await run_wrk(
                bot.url, floor.same(text), SECRET, work, seconds=SECONDS
            )
        stop.set()
        progress("commands done; the storm's last answers")
        await storming
        progress("the tick")
        ticked, tick_seconds = await ticking
        progress("done")
    finally:
        await bot.stop(within=60)
        prometheus.close()
    for load in [*quiet.values(), *stormy.values()]:
        floor.check_clean(load)
    assert ticked > 0, "the tick measured no rollout"
    rate = storm.taken * PER_NOTIFICATION / storm.seconds
    rows = [
        "| command | quiet p50 ms | quiet p99 ms | quiet /s | storm p50 ms | storm p99 ms "
        "| storm /s | p99 storm ÷ quiet |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for text in texts:
        q, s = quiet[text], stormy[text]
        rows.append(
            f"| `{text}` | {q.p50_ms:.1f} | {q.p99_ms:.1f} | {q.per_second:,.0f} | "
            f"{s.p50_ms:.1f} | {s.p99_ms:.1f} | {s.per_second:,.0f} | "
            f"{s.p99_ms / q.p99_ms:.2f}× |"
        )
    tick = (
        f"all {len(ROLLOUTS):,} measured within {tick_seconds:.1f} s of the step"
        if ticked == len(ROLLOUTS)
        else f"{ticked:,} of them measured, the last {tick_seconds:.1f} s after the step; the "
        "others' ticks failed on a busy database and wait for their lease"
    )
    text = "\n".join([
        f"The bot on SQLite with {len(ROLLOUTS):,} started rollouts of one gate each "
        "(a real Prometheus answers; the gate does not batch, so one query per rollout), "
        f"commands from wrk with 20 in flight for {SECONDS} s each. During the storm: "
        f"notifications of {PER_NOTIFICATION} alerts paced at {ALERTS_PER_SECOND:,} alerts/s "
        f"to `/alertmanager` ({storm.sent:,} sent, {storm.taken:,} answered 200, "
        f"{storm.failed} not; {rate:,.0f} alerts/s taken), and the clock stepped by "
        f"{int(INTERVAL.total_seconds())} s so that all {len(ROLLOUTS):,} rollouts' gates "
        f"were due at once ({tick}).",
        "",
        *rows,
    ])
    write_fragment("P1b", text)
    print("\n" + text)
