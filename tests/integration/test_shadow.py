"""Shadow runs on a manual clock: the bot measures, advances and rolls back as it would live,
and says so in the thread marked "shadow", while `GET /flags`, the flags file and the
webhook keep delivering 0 % for the flag, and nobody is paged unless the config says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import ONCALL, dms, incidents, posts, settle

FLAG = "new_checkout"


class SetSource:
    """A metrics source answering whatever the test sets."""

    def __init__(self) -> None:
        self.answer = Measurement((0.001,))

    async def measure(self, query: str) -> Measurement:
        return self.answer


def config(flags_file: Path, webhook: str, advance: str = "manual", page: bool = False) -> str:
    return ONCALL + f"""\
flags_file: {flags_file}
gates:
  error_rate:
    query: 'sum(rate(errors{{flag="{{flag}}"}}[1m]))'
    fail_above: 0.01
    for: 2m
    interval: 30s
plans:
  quick:
    stages:
      - {{percent: 5, soak: 1h}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: {FLAG}
    plan: quick
    gates: [error_rate]
    advance: {advance}
    page_in_shadow: {str(page).lower()}
    webhook: {webhook}
"""


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A service's webhook endpoint: what the bot POSTs to it, in order."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/rollout", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/rollout", received
    await runner.cleanup()


async def run_minutes(bot: RolloutBot, clock: ManualClock, minutes: int) -> None:
    for _ in range(minutes * 2):
        await clock.advance(timedelta(seconds=30))
        await settle(bot)


async def delivered(http: aiohttp.ClientSession, bot: RolloutBot, flags_file: Path) -> set[int]:
    """The percentage `/flags` and the flags file give the flag."""
    async with http.get(f"{bot.url}/flags") as response:
        served = (await response.json())["flags"][FLAG]
    written = json.loads(await asyncio.to_thread(flags_file.read_text))["flags"][FLAG]
    assert served["enabled"] is (served["rollout_percentage"] > 0)
    return {served["rollout_percentage"], written["rollout_percentage"]}


async def until_delivered(
    http: aiohttp.ClientSession, bot: RolloutBot, flags_file: Path, expected: set[int]
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (seen := await delivered(http, bot, flags_file)) != expected:
        assert loop.time() < deadline, f"/flags and the flags file still give {seen}"
        await asyncio.sleep(0.05)


async def api(http: aiohttp.ClientSession, bot: RolloutBot) -> dict[str, Any]:
    async with http.get(f"{bot.url}/api/rollouts/checkout") as response:
        data: dict[str, Any] = await response.json()
        return data


def thread(standin: SlackStandIn) -> list[str]:
    return [str(p["text"]) for p in posts(standin) if "thread_ts" in p]


async def test_a_shadow_run_posts_its_decisions_while_flags_stay_at_0(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, hooks = receiver
    clock, source = ManualClock(), SetSource()
    flags_file = tmp_path / "flags.json"
    bot = await make_bot(config(flags_file, url), clock=clock, metrics_source=source)
    reply = await SlackUser(http, bot, "U0CORA").say("start checkout shadow")
    assert "now progressing at 5 %" in reply
    await settle(bot)
    assert await delivered(http, bot, flags_file) == {0}

    await run_minutes(bot, clock, 62)  # the 1 h soak at 5 % ends green: it advances itself
    data = await api(http, bot)
    assert (data["percent"], data["shadow"], data["delivered_percent"]) == (25, True, 0)
    assert await delivered(http, bot, flags_file) == {0}
    said = thread(standin)
    assert any(t.startswith("[shadow]") and "5 % → 25 %" in t for t in said), said
    assert all(t.startswith("[shadow]") for t in said), said

    source.answer = Measurement((0.2,))  # red for its 2 minutes: a rollback, in shadow
    await run_minutes(bot, clock, 4)
    assert (await api(http, bot))["state"] == "rolled_back"
    rollback = [t for t in thread(standin) if "rolled back" in t]
    assert rollback and rollback[0].startswith("[shadow]") and "0.2" in rollback[0]
    assert await delivered(http, bot, flags_file) == {0}
    assert dms(standin) == [] and await incidents(bot) == []  # nobody was paged
    assert hooks and {h["rollout_percentage"] for h in hooks} == {0}
    assert all(h["shadow"] is True for h in hooks)
    parent = next(p for p in posts(standin) if "thread_ts" not in p)
    assert "Shadow run" in json.dumps(parent["blocks"])

    # A live start afterwards delivers again.
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await settle(bot)
    # The flags file is rewritten by its own loop, kicked by the commit: wait for it.
    await until_delivered(http, bot, flags_file, {5})


async def test_advance_shadow_in_the_config_pages_when_told_to(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, _ = receiver
    clock, source = ManualClock(), SetSource()
    flags_file = tmp_path / "flags.json"
    text = config(flags_file, url, advance="shadow", page=True)
    bot = await make_bot(text, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await run_minutes(bot, clock, 1)
    assert (await api(http, bot))["shadow"] is True
    source.answer = Measurement((0.2,))
    await run_minutes(bot, clock, 4)
    assert (await api(http, bot))["state"] == "rolled_back"
    assert await delivered(http, bot, flags_file) == {0}
    (incident,) = await incidents(bot)
    assert incident.kind == "automatic_rollback"
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]
