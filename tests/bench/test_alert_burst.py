"""How many alerts per second `POST /alertmanager` takes in a burst (`make bench`), and that
none is lost and each group pages once.

The bot runs as its own process on a SQLite file, with a one-level on-call chain. 10,000
alerts in 500 groups of 20 arrive as a two-member Alertmanager cluster sends them: each
group's first notification (after `group_wait`) carries its first 10 alerts, the next one
(after `group_interval`) the whole group of 20, and each member sends each notification,
so every body arrives twice. 16 concurrent senders post them and retry on 5xx, as
Alertmanager does. Afterwards the database must hold every alert in one incident per
group, and the Slack stand-in must have received exactly one page per group.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.domain.alerts import group_id
from bot.standin.web_api import SlackStandIn
from storage.db import create_engine, sessionmaker
from storage.incidents import AlertNotificationRow, IncidentRow
from storage.models import OutboxRow
from tests.bench.fragments import write_fragment
from tests.support.bot_process import BotProcess
from tests.support.incidents import alert, dms, webhook

GROUPS = 500
PER_GROUP = 20
FIRST = 10  # alerts in a group's first notification; the second carries all PER_GROUP
CLUSTER = 2  # every notification arrives from each member
SENDERS = 16
PAGED = "U0FORGE"
CONFIG = f"""
oncall:
  chain:
    - {{user: {PAGED}, wait: 1h}}
rollouts:
  - {{name: phase-4, flag: phase_4_deployment}}
"""


def group_key(g: int) -> str:
    return f'{{}}:{{alertname="Burst{g}"}}'


def notifications() -> list[bytes]:
    """Every body the cluster sends, in the order it sends them: each group's first
    notification, then (a group_interval later) each group's whole set."""
    groups = []
    for g in range(GROUPS):
        labels = {"rollout": "phase-4"} if g % 10 == 0 else {"service": f"svc-{g}"}
        groups.append([alert(f"Burst{g}", f"{g:04d}{i:04d}", **labels) for i in range(PER_GROUP)])
    bodies = []
    for size in (FIRST, PER_GROUP):
        for g, alerts in enumerate(groups):
            body = json.dumps(webhook(group_key(g), alerts[:size])).encode()
            bodies += [body] * CLUSTER
    return bodies


def page_of(message: dict[str, object]) -> int | None:
    """The incident a page DM is about, from its buttons' block id (`page:ID`)."""
    for block in message.get("blocks") or []:  # type: ignore[attr-defined]
        if str(block.get("block_id", "")).startswith("page:"):
            return int(block["block_id"].split(":")[1])
    return None


@pytest.mark.bench
async def test_alert_burst(tmp_path: Path, standin: SlackStandIn) -> None:
    bot = BotProcess(tmp_path, standin, CONFIG)
    await bot.start()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in notifications():
        queue.put_nowait(body)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    retries = 0

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal retries
        while not queue.empty():
            body = queue.get_nowait()
            while True:
                sent = time.perf_counter()
                async with http.post(
                    f"{bot.url}/alertmanager",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as response:
                    reply = await response.json()
                    if response.status >= 500:
                        retries += 1
                        await asyncio.sleep(0.05)
                        continue
                    latencies.append(time.perf_counter() - sent)
                    assert response.status == 200, reply
                    outcomes[reply["status"]] += 1
                    break

    def pages() -> list[dict[str, object]]:
        return [p for p in dms(standin) if p["channel"] == PAGED]

    try:
        async with aiohttp.ClientSession() as http:
            started = time.perf_counter()
            await asyncio.gather(*(sender(http) for _ in range(SENDERS)))
            elapsed = time.perf_counter() - started
        await standin.wait_for(  # a generous bound; the figure is what counts
            "chat.postMessage", lambda c: c.params.get("channel") == PAGED, GROUPS, timeout=600
        )
        all_paged = time.perf_counter() - started
    finally:
        await bot.stop()

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    async with sessionmaker(engine)() as session:
        rows = (await session.scalars(select(IncidentRow))).all()
        taken = await session.scalar(select(func.count()).select_from(AlertNotificationRow))
        undelivered = await session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.channel == PAGED, OutboxRow.delivered_at.is_(None))
        )
    await engine.dispose()
    requests = len(latencies)
    total = GROUPS * PER_GROUP
    paged = Counter(page_of(p) for p in pages())
    ordered = sorted(latencies)
    p50, p95 = statistics.median(ordered), statistics.quantiles(ordered, n=20)[18]
    latency = f"{p50 * 1000:.0f} / {p95 * 1000:.0f} / {ordered[-1] * 1000:.0f} ms"
    print(
        f"\n/alertmanager burst: {total} alerts in {GROUPS} groups, {requests} requests "
        f"({SENDERS} concurrent senders): {elapsed:.2f} s, {total / elapsed:,.0f} alerts/s; "
        f"503 retries {retries}; outcomes {dict(outcomes)}; all {len(pages())} pages at "
        f"Slack {all_paged:.2f} s after the first request"
    )

    # Nothing lost: every group is one incident holding all its alerts, and every distinct
    # notification was taken once (the cluster's second copy of each is a duplicate).
    by_group = Counter(r.source_key for r in rows)
    assert by_group == Counter(f"am:{group_id(group_key(g))}" for g in range(GROUPS))
    assert all(len(r.alerts) == PER_GROUP for r in rows)
    assert sum(len(r.alerts) for r in rows) == total
    assert taken == 2 * GROUPS
    assert outcomes["duplicate"] == 2 * GROUPS * (CLUSTER - 1)
    assert outcomes["opened"] == GROUPS
    assert outcomes["opened"] + outcomes["updated"] + outcomes["unchanged"] == 2 * GROUPS
    # One page per group: each incident paged once, no group twice, no page left leased
    # (to be sent again when its lease ends).
    assert paged == Counter({r.id: 1 for r in rows}), "pages per incident differ from one"
    assert undelivered == 0

    write_fragment(
        "P4",
        f"""
The bot as its own process (`rollout-bot serve`, SQLite), a one-level on-call chain.
{total:,} alerts in {GROUPS} groups of {PER_GROUP}, sent as a two-member Alertmanager
cluster sends them: each group's first notification with {FIRST} alerts, then the whole
group of {PER_GROUP}, each body from both members ({requests:,} requests), by
{SENDERS} concurrent senders that retry on 5xx.

| figure | value |
| --- | --- |
| burst taken in | {elapsed:.2f} s |
| alerts per second | {total / elapsed:,.0f} |
| requests per second | {requests / elapsed:,.0f} |
| request latency p50 / p95 / max | {latency} |
| 503 answers (retried) | {retries} |
| outcomes | {", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))} |
| all {GROUPS} pages at Slack | {all_paged:.2f} s after the first request |

Checked: {len(rows)} incidents, one per group, holding all {total:,} alerts;
{taken:,} notifications taken, every copy from the second member a duplicate; exactly
one page per group at the Slack stand-in, and no page left in the outbox to go again.

Command: `.venv/bin/pytest -q -m bench tests/bench/test_alert_burst.py -s`
""",
    )
