"""The service learns its percentage: `GET /flags`, the flags file and the webhook each follow
a change within one second; the evaluate endpoint is stable as the percentage grows; a
webhook that keeps failing holds the rollout and the thread says so."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser


class Receiver:
    """A service's webhook endpoint: records what it is sent, answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.status = 200
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((time.monotonic(), await request.json()))
        return web.Response(status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recv.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield recv
    await runner.cleanup()


def config(flags_file: Path, webhook: str) -> str:
    return f"""
channel: "#deployments"
roles: {{leads: [U0CORA], operators: [U0FORGE]}}
flags_file: {flags_file}
plans:
  quick:
    stages:
      - {{percent: 10, soak: 1h, flags: [otel_enabled]}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: new_checkout
    plan: quick
    webhook: {webhook}
"""


async def seen_by(
    start: float, probe: Callable[[], Awaitable[bool]], give_up: float = 5.0
) -> float:
    """Seconds from `start` (time.monotonic) until `probe` holds, polled every 20 ms."""
    while not await probe():
        assert time.monotonic() - start < give_up, f"not seen within {give_up}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def within(seconds: float, probe: Callable[[], Awaitable[bool]]) -> float:
    return await seen_by(time.monotonic(), probe, give_up=seconds)


async def test_every_channel_follows_a_change_within_a_second(
    make_bot: BotFactory, receiver: Receiver, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "flags" / "feature_flags.json"
    bot = await make_bot(config(path, receiver.url))
    lead = SlackUser(http, bot, "U0CORA")

    async def served(percent: int) -> bool:
        async with http.get(f"{bot.url}/flags") as response:
            doc = await response.json()
        return bool(doc["flags"]["new_checkout"]["rollout_percentage"] == percent)

    async def in_file(percent: int) -> bool:
        if not path.exists():
            return False
        doc = json.loads(path.read_text())
        return bool(doc["flags"]["new_checkout"]["rollout_percentage"] == percent)

    async def posted(percent: int) -> bool:
        return any(body["rollout_percentage"] == percent for _, body in receiver.received)

    async def keys_in() -> set[str]:
        found = set()
        for i in range(300):
            url = f"{bot.url}/flags/new_checkout/evaluate?key=user-{i}"
            async with http.get(url) as response:
                if (await response.json())["on"]:
                    found.add(f"user-{i}")
        return found

    channels = (served, in_file, posted)
    assert await in_file(0)  # the file exists as soon as the bot is up
    steps = (("start checkout", 10), ("advance 25 checkout force timing the channels", 25))
    for command, percent in steps:
        before = await keys_in()
        changed_at = time.monotonic()  # every channel is timed from the command, together
        await lead.say(command)
        seen = await asyncio.gather(
            *(seen_by(changed_at, lambda p=probe, n=percent: p(n)) for probe in channels)
        )
        for probe, at in zip(channels, seen, strict=True):
            print(f"{probe.__name__} {percent} %: {at * 1000:.0f} ms after the command")
            assert at < 1.0, f"{probe.__name__} saw {percent} % only after {at:.2f}s"
        after = await keys_in()
        assert before <= after, "a key that was in fell out as the percentage grew"
        assert abs(len(after) / 300 - percent / 100) < 0.08
    doc = json.loads(path.read_text())
    assert doc["flags"]["new_checkout"]["stage_flags"] == ["otel_enabled"]
    assert doc["flags"]["otel_enabled"]["enabled"] is True
    assert not list(path.parent.glob("*.tmp"))  # no temp file left behind


async def test_a_failing_webhook_holds_the_rollout_and_says_so(
    make_bot: BotFactory,
    receiver: Receiver,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    bot = await make_bot(config(tmp_path / "flags.json", receiver.url))
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await within(1.0, lambda: asyncio.sleep(0, bool(receiver.received)))
    receiver.status = 500
    await SlackUser(http, bot, "U0CORA").say("advance 25 checkout force checked by hand")

    async def paused() -> bool:
        async with http.get(f"{bot.url}/api/rollouts/checkout") as response:
            return bool((await response.json())["state"] == "paused")

    await within(15.0, paused)
    attempts = [body for _, body in receiver.received if body["rollout_percentage"] == 25]
    assert len(attempts) >= 5
    (call,) = await standin.wait_for(
        "chat.postMessage", lambda c: "webhook" in str(c.params.get("text"))
    )
    text = str(call.params["text"])
    assert "paused" in text and "webhook" in text and "HTTP 500" in text
