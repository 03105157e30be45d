"""How many alerts per second `POST /alertmanager` takes in a burst (`make bench`).

The bot runs as its own process on a SQLite file. 5,000 alerts in 250 groups of 20 arrive
as Alertmanager would send them from a two-member cluster (each notification twice), from
16 concurrent senders that retry on 5xx like Alertmanager. Afterwards the database must
hold every alert, one incident per group, one taken notification per group.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.standin.web_api import SlackStandIn
from storage.db import create_engine, sessionmaker
from storage.incidents import AlertNotificationRow, IncidentRow
from tests.support.bot_process import BotProcess
from tests.support.incidents import alert, webhook

GROUPS = 250
PER_GROUP = 20
CLUSTER = 2  # every notification arrives from each member
SENDERS = 16
CONFIG = """
oncall:
  chain:
    - {user: U0FORGE, wait: 5m}
rollouts:
  - {name: phase-4, flag: phase_4_deployment}
"""


def notifications() -> list[bytes]:
    bodies = []
    for g in range(GROUPS):
        labels = {"rollout": "phase-4"} if g % 10 == 0 else {"service": f"svc-{g}"}
        alerts = [alert(f"Burst{g}", f"{g:04d}{i:04d}", **labels) for i in range(PER_GROUP)]
        body = json.dumps(webhook(f'{{}}:{{alertname="Burst{g}"}}', alerts)).encode()
        bodies += [body] * CLUSTER
    return bodies


@pytest.mark.bench
async def test_alert_burst(tmp_path: Path, standin: SlackStandIn) -> None:
    bot = BotProcess(tmp_path, standin, CONFIG)
    await bot.start()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in notifications():
        queue.put_nowait(body)
    outcomes: dict[str, int] = {}
    retries = 0

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal retries
        while not queue.empty():
            body = queue.get_nowait()
            while True:
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
                    assert response.status == 200, reply
                    outcomes[reply["status"]] = outcomes.get(reply["status"], 0) + 1
                    break

    try:
        async with aiohttp.ClientSession() as http:
            started = time.perf_counter()
            await asyncio.gather(*(sender(http) for _ in range(SENDERS)))
            elapsed = time.perf_counter() - started
    finally:
        await bot.stop()

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    async with sessionmaker(engine)() as session:
        rows = (await session.scalars(select(IncidentRow))).all()
        taken = await session.scalar(select(func.count()).select_from(AlertNotificationRow))
    await engine.dispose()
    alerts_held = sum(len(r.alerts) for r in rows)
    requests = GROUPS * CLUSTER
    total = GROUPS * PER_GROUP
    print(
        f"\n/alertmanager burst: {total} alerts in {GROUPS} groups of {PER_GROUP}, each "
        f"notification sent {CLUSTER}x ({requests} requests, {SENDERS} concurrent senders)\n"
        f"  {elapsed:.2f} s: {total / elapsed:,.0f} alerts/s, {requests / elapsed:,.0f} "
        f"requests/s; 503 retries {retries}; outcomes {outcomes}\n"
        f"  stored: {len(rows)} incidents, {alerts_held} alerts, {taken} notifications"
    )
    assert outcomes == {"opened": GROUPS, "duplicate": GROUPS * (CLUSTER - 1)}
    assert len(rows) == GROUPS and alerts_held == total and taken == GROUPS
