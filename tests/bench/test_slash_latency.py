"""How long the running bot takes to answer a signed slash command (`make bench`).

The bot runs as its own process on a SQLite file; the requests come from this one, one at
a time, as Slack sends them. Reads (`status`) and writes (`pause`/`resume`, each a full
decision: status, audit event, outbox messages in one transaction) are timed separately.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import aiohttp
import pytest

from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET
from tests.support.bot_process import BotProcess
from tests.support.slack_requests import post_signed, slash_body

CONFIG = "rollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n"
ROUNDS = 200  # each round: status, pause, resume → 600 requests


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@pytest.mark.bench
async def test_slash_command_latency(tmp_path: Path, standin: SlackStandIn) -> None:
    bot = BotProcess(tmp_path, standin, CONFIG)
    await bot.start()
    timings: dict[str, list[float]] = {"status": [], "pause": [], "resume": []}
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{bot.url}/slack/events"
            status, reply = await post_signed(http, url, slash_body("start"), SECRET)
            assert status == 200 and reply["text"].startswith("Done:")
            for _ in range(ROUNDS):
                for verb in timings:
                    body = slash_body(verb)
                    started = time.perf_counter()
                    status, reply = await post_signed(http, url, body, SECRET)
                    timings[verb].append((time.perf_counter() - started) * 1000)
                    assert status == 200
                    assert verb == "status" or reply["text"].startswith("Done:"), reply
    finally:
        await bot.stop()
    every = [t for ts in timings.values() for t in ts]
    print(f"\nslash command round trip over {len(every)} signed requests (ms):")
    for name, values in [("all", every), *timings.items()]:
        print(
            f"  {name:<7} p50 {statistics.median(values):6.2f}  p99 {percentile(values, 99):6.2f}"
            f"  max {max(values):6.2f}"
        )
    assert len(every) >= 500
