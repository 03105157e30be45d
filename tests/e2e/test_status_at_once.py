"""`/rollout status` answered ahead of Bolt from memory: the same bytes Bolt sends, and
never a status older than the last change, whichever replica made it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app import RolloutBot
from bot.clock import ManualClock
from tests.conftest import SECRET, BotFactory
from tests.support.slack_requests import signed_headers, slash_body

TWO = """
channel: "#deployments"
rollouts:
  - {name: phase-4, flag: phase_4_deployment}
  - {name: search-v2, flag: search_v2}
"""
NIGHTS = """
channel: "#deployments"
timezone: Europe/Paris
policy:
  freeze:
    - {daily: "18:00-08:00", reason: nights}
rollouts:
  - {name: phase-4, flag: phase_4_deployment}
"""


async def raw(http: aiohttp.ClientSession, bot: RolloutBot, text: str) -> tuple[int, str, bytes]:
    """A signed `/rollout TEXT` over HTTP: status, Content-Type, the body as sent."""
    body = slash_body(text)
    async with http.post(
        f"{bot.url}/slack/events", data=body.encode(), headers=signed_headers(body, SECRET)
    ) as response:
        return response.status, response.content_type, await response.read()


async def said(http: aiohttp.ClientSession, bot: RolloutBot, text: str) -> str:
    status, _, body = await raw(http, bot, text)
    assert status == 200, body
    return str(json.loads(body)["text"])


async def through_bolt(bot: RolloutBot, text: str) -> tuple[int, str, bytes]:
    """The same command handed to Bolt itself, as the listener answers it."""
    body = slash_body(text)
    headers = {k: [v] for k, v in signed_headers(body, SECRET).items()}
    headers["content-type"] = ["application/x-www-form-urlencoded"]
    response = await bot.bolt.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    content_type = response.headers.get("content-type", [""])[0].split(";")[0]
    return response.status, content_type, response.body.encode()


@pytest.mark.parametrize(
    "text",
    ["status", "status phase-4", "status PHASE-4", "help", "", "status phse-4", "florp",
     "status <!channel> &amp; <@U0EVIL>"],
)
async def test_the_answer_is_what_bolt_sends_byte_for_byte(
    make_bot: BotFactory, http: aiohttp.ClientSession, text: str
) -> None:
    bot = await make_bot(TWO)
    assert (await said(http, bot, "start phase-4")).startswith("Done:")
    assert await raw(http, bot, text) == await through_bolt(bot, text)


async def test_another_replicas_change_shows_at_once(
    make_bot: BotFactory, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    """Replicas share PostgreSQL (a SQLite file serves one bot: tests/e2e/test_crash_recovery)."""
    reader = await make_bot(TWO, database_url=postgres_url)
    writer = await make_bot(TWO, database_url=postgres_url)
    assert "not started" in await said(http, reader, "status phase-4")
    steps = [
        ("start phase-4", "progressing at 5 %"),
        ("pause phase-4 -- checking", "paused"),
        ("resume phase-4", "progressing at 5 %"),
        ("start search-v2", "progressing at 5 %"),
    ]
    for command, shown in steps:
        assert (await said(http, writer, command)).startswith("Done:")
        name = command.split()[1]
        assert shown in (await said(http, reader, f"status {name}")).split("\n")[0]
    assert "frozen" not in await said(http, reader, "status")
    assert (await said(http, writer, "freeze incident 12")).startswith("Done:")
    assert "Every advance is frozen" in await said(http, reader, "status")
    assert (await said(http, writer, "unfreeze")).startswith("Done:")
    assert "Every advance is frozen" not in await said(http, reader, "status")


async def test_a_freeze_window_shows_from_its_first_second(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(datetime(2026, 11, 30, 16, 59, 59, tzinfo=UTC))  # 17:59:59 in Paris
    bot = await make_bot(NIGHTS, clock=clock)
    assert "Freeze window" not in await said(http, bot, "status")
    await clock.advance(timedelta(seconds=1))  # 18:00:00: the nights' window holds
    assert "🧊 Freeze window" in await said(http, bot, "status")
    await clock.advance(timedelta(hours=14) - timedelta(seconds=1))  # 07:59:59
    assert "🧊 Freeze window" in await said(http, bot, "status")
    await clock.advance(timedelta(seconds=1))
    assert "Freeze window" not in await said(http, bot, "status")
