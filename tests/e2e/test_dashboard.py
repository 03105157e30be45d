"""The dashboard and the App Home on the real server: signed Slack requests in, pages and
server-sent events out, and what the Slack stand-in receives."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.config import parse_config
from bot.demo.terminal import render
from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET, TWO_ROLLOUTS, BotFactory, SlackUser, bot_settings
from tests.support.incidents import incidents, open_via_opener, settle
from tests.support.recorded_metrics import SteadySource
from tests.support.slack_requests import (
    API_APP_ID,
    TEAM_ID,
    block_action_payload,
    post_signed,
    signed_headers,
)

TOKEN = "dashboard-token-for-tests"


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs from a text/event-stream response."""
    name, data = "message", []
    while True:
        raw = await response.content.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def next_fragment(events: AsyncIterator[tuple[str, str]], needle: str) -> str:
    async with asyncio.timeout(5):
        async for name, data in events:
            if name == "rollouts" and needle in data:
                return data
    raise AssertionError(f"the stream ended before showing {needle!r}")


async def test_the_page_shows_every_rollout(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_user("U0CORA", real_name="Cora Diaz", display_name="Cora")
    bot = await make_bot()
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start phase-4")
    await cora.say("pause phase-4 waiting for <b>Tuesday</b> traffic")

    async with http.get(f"{bot.url}/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "script-src 'sha256-" in response.headers["Content-Security-Policy"]
        html = await response.text()
    assert '<article class="rollout state-paused" id="rollout-phase-4"' in html
    assert "waiting for &lt;b&gt;Tuesday&lt;/b&gt; traffic" in html
    assert "@Cora paused at 5 % (slash)" in html  # her name in Slack, not U0CORA
    assert "U0CORA" not in html
    assert '<article class="rollout state-pending" id="rollout-search-v2"' in html

    async with http.get(f"{bot.url}/?fragment=1") as response:
        fragment = await response.text()
    assert fragment.startswith("<article") and "<html" not in fragment
    assert "@Cora started 0 % → 5 % (slash)" in fragment
    (asked,) = standin.calls_to("users.info")  # once, then kept
    assert asked.params["user"] == "U0CORA"


async def test_a_name_slack_cannot_give_shows_the_id_and_is_asked_again_later(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot()
    standin.fail_next("users.info", error="user_not_found")
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    async with http.get(f"{bot.url}/?fragment=1") as response:
        assert "@U0CORA started 0 % → 5 % (slash)" in await response.text()
    async with http.get(f"{bot.url}/?fragment=1") as response:
        assert "@U0CORA started" in await response.text()
    assert len(standin.calls_to("users.info")) == 1  # not asked on every render


async def test_the_event_stream_pushes_each_change(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_user("U0CORA", display_name="Cora")
    bot = await make_bot()
    cora = SlackUser(http, bot, "U0CORA")
    async with http.get(f"{bot.url}/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(response)
        first = await next_fragment(events, "phase-4")
        assert 'aria-valuenow="0"' in first

        await cora.say("start phase-4")
        assert 'aria-label="phase-4 at 5 %"' in await next_fragment(events, "phase-4 at 5 %")
        await cora.say("advance next phase-4 force canary checked by hand")
        pushed = await next_fragment(events, "phase-4 at 10 %")
        assert "@Cora advanced 5 % → 10 % (slash)" in pushed
        assert bot.dashboard.open_streams == 1

        # Stopping the bot ends open streams at once instead of waiting for them.
        started = time.monotonic()
        await bot.stop()
        assert time.monotonic() - started < 5


@pytest.fixture
async def make_public_bot(
    standin: SlackStandIn, sqlite_url: str
) -> AsyncIterator[Callable[[str], Awaitable[RolloutBot]]]:
    """A bot listening on every interface (0.0.0.0), beyond loopback."""
    bots: list[RolloutBot] = []

    async def make(config_text: str) -> RolloutBot:
        settings = bot_settings(standin, sqlite_url).model_copy(update={"host": "0.0.0.0"})
        bot = RolloutBot(parse_config(config_text), settings)
        await bot.start()
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.stop()


async def test_beyond_loopback_the_dashboard_needs_the_configured_token(
    make_public_bot: Callable[[str], Awaitable[RolloutBot]],
) -> None:
    bot = await make_public_bot(f"{TWO_ROLLOUTS}\ndashboard: {{token: {TOKEN}}}\n")
    base = f"http://127.0.0.1:{bot.port}"
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{base}/") as response:
            assert response.status == 401
            assert "Open /?token=" in await response.text()
        async with http.get(f"{base}/events") as response:
            assert response.status == 401
        async with http.get(f"{base}/?token=wrong") as response:
            assert response.status == 401
            assert "Wrong dashboard token" in await response.text()

        async with http.get(f"{base}/?token={TOKEN}", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/"
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        async with http.get(f"{base}/") as response:  # the cookie now lets it in
            assert response.status == 200
            assert "phase-4" in await response.text()

    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"{base}/?fragment=1", headers=headers) as response:
            assert response.status == 200


async def test_beyond_loopback_without_a_token_the_dashboard_says_how_to_set_one(
    make_public_bot: Callable[[str], Awaitable[RolloutBot]], http: aiohttp.ClientSession
) -> None:
    bot = await make_public_bot(TWO_ROLLOUTS)
    async with http.get(f"http://127.0.0.1:{bot.port}/") as response:
        assert response.status == 403
        text = await response.text()
    assert "dashboard: {token: &lt;at least 16 random characters&gt;}" in text
    async with http.get(f"http://127.0.0.1:{bot.port}/api/rollouts") as response:
        assert response.status == 200  # the JSON API is unchanged


async def test_on_loopback_a_configured_token_is_still_required(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    """Behind a reverse proxy on the same host every request comes from 127.0.0.1: a token
    in the config is asked for there too."""
    bot = await make_bot(f"{TWO_ROLLOUTS}\ndashboard: {{token: {TOKEN}}}\n")
    assert bot.settings.host == "127.0.0.1"
    base = f"http://127.0.0.1:{bot.port}"
    async with http.get(f"{base}/") as response:
        assert response.status == 401
        text = await response.text()
    assert "Open /?token=" in text and "phase-4" not in text
    async with http.get(f"{base}/events") as response:
        assert response.status == 401
    async with http.get(f"{base}/?fragment=1", headers={"X-Forwarded-For": "127.0.0.1"}) as r:
        assert r.status == 401
    async with http.get(f"{base}/?token=wrong-token-for-this-bot") as response:
        assert response.status == 401

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with http.get(f"{base}/", headers=bearer) as response:
        assert response.status == 200
        assert "phase-4" in await response.text()
    async with http.get(f"{base}/events", headers=bearer) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"


async def test_on_loopback_without_a_token_the_dashboard_stays_open(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(TWO_ROLLOUTS)
    async with http.get(f"http://127.0.0.1:{bot.port}/") as response:
        assert response.status == 200
        assert "phase-4" in await response.text()


def home_opened(user: str, event_id: str, tab: str = "home") -> dict[str, Any]:
    """An `app_home_opened` event_callback, as Slack sends it."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": API_APP_ID,
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME",
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM_ID, "user_id": "U0BOT", "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6ImFwcF9ob21lX29wZW5lZCJ9",
    }


async def send_event(
    http: aiohttp.ClientSession, bot: RolloutBot, payload: dict[str, Any], **headers: Any
) -> int:
    body = json.dumps(payload)
    signed = signed_headers(body, SECRET, **headers)
    signed["Content-Type"] = "application/json"
    async with http.post(f"{bot.url}/slack/events", data=body.encode(), headers=signed) as r:
        return r.status


async def test_opening_the_app_home_publishes_the_overview_once_per_event(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot()
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start phase-4")
    event_id = f"Ev{uuid.uuid4().hex[:10].upper()}"

    assert await send_event(http, bot, home_opened("U0CORA", event_id)) == 200
    published = await standin.wait_for("views.publish")
    assert not published[0].failed, published[0].describe()  # valid Block Kit, within limits
    home = render(standin.home_tabs["U0CORA"])
    assert "Rollouts" in home
    assert "🟢 phase-4 · flag phase_4_deployment · progressing at 5 %" in home
    assert "⚪ search-v2 · flag search_v2 · not started" in home
    assert "You hold no open incidents, and none is paging you." in home

    # Slack retries the same event_id; the Messages tab is not the Home tab.
    assert await send_event(http, bot, home_opened("U0CORA", event_id), retry_num=1) == 200
    assert await send_event(http, bot, home_opened("U0CORA", "EvMESSAGES", "messages")) == 200
    await cora.say("advance next phase-4 force canary checked by hand")
    assert await send_event(http, bot, home_opened("U0CORA", "EvSECOND")) == 200
    calls = await standin.wait_for("views.publish", count=2)
    await asyncio.sleep(0.2)
    assert len(standin.calls_to("views.publish")) == len(calls) == 2
    assert "progressing at 10 %" in render(standin.home_tabs["U0CORA"])


GATED = """
channel: "#deployments"
gates:
  error_rate:
    query: 'sum(rate(errors{flag="{flag}"}[1m]))'
    fail_above: 0.01
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
    gates: [error_rate]
"""


async def test_the_page_shows_the_gates_the_control_loop_measured(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(GATED, clock=ManualClock(), metrics_source=SteadySource(0.004))
    async with http.get(f"{bot.url}/?fragment=1") as response:
        assert "error_rate: no measurement yet." in await response.text()

    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    async with asyncio.timeout(5):
        while True:
            async with http.get(f"{bot.url}/?fragment=1") as response:
                html = await response.text()
            if "<h3>Gates</h3><table>" in html:
                break
            await asyncio.sleep(0.05)
    assert '<td>error_rate</td><td class="gate-pass">green</td><td>0.004</td><td>0.01</td>' in html


async def test_open_incidents_show_live_and_the_home_tab_lists_those_you_hold(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_user("U0FORGE", real_name="Forge Okafor", display_name="")  # no display name
    bot = await make_bot()
    cora, forge = SlackUser(http, bot, "U0CORA"), SlackUser(http, bot, "U0FORGE")
    await cora.say("start phase-4")
    async with http.get(f"{bot.url}/events") as response:
        events = sse_events(response)
        await next_fragment(events, "phase-4 at 5 %")

        await open_via_opener(bot, summary="error_rate 2.1 % > 0.5 % for 5m")
        pushed = await next_fragment(events, "Open incidents (1)")
        assert "error_rate 2.1 % &gt; 0.5 % for 5m" in pushed
        assert "not acknowledged yet" in pushed

        await forge.say("ack")
        pushed = await next_fragment(events, "held by @Forge Okafor")

    assert await send_event(http, bot, home_opened("U0FORGE", "EvFORGE")) == 200
    await standin.wait_for("views.publish")
    home = render(standin.home_tabs["U0FORGE"])
    assert "Incidents you hold (1)\n• #1 error_rate 2.1 % > 0.5 % for 5m · phase-4" in home


ON_CALL = TWO_ROLLOUTS.replace(
    "rollouts:", "oncall:\n  chain:\n    - {user: U0FORGE, wait: 5m}\nrollouts:", 1
)


def home_button(view: dict[str, Any], text: str) -> dict[str, Any]:
    """The button on the Home tab's section whose text starts with `text`."""
    return next(
        b["accessory"] for b in view["blocks"]
        if b["type"] == "section" and b["text"]["text"].startswith(text) and "accessory" in b
    )


async def click_in_home(
    http: aiohttp.ClientSession, bot: RolloutBot, standin: SlackStandIn, user: str,
    button: dict[str, Any],
) -> int:
    """A click on a button of the Home tab, as Slack sends it: from a view, no response_url."""
    view = standin.home_tabs[user]
    payload = block_action_payload(button["action_id"], button.get("value", ""), user_id=user)
    payload.pop("response_url")
    payload.pop("channel")
    payload.pop("message")
    payload["container"] = {"type": "view", "view_id": view["id"]}
    payload["view"] = view
    body = urlencode({"payload": json.dumps(payload)})
    status, _ = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    return status


async def test_the_home_tab_acknowledges_and_resolves_and_links_to_the_thread(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ON_CALL, clock=ManualClock())
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await open_via_opener(bot, summary="error_rate 2.1 % > 0.5 % for 5m")
    await settle(bot)
    assert await send_event(http, bot, home_opened("U0FORGE", "EvPAGED")) == 200
    await standin.wait_for("views.publish")

    # The rollout's thread, by the permalink Slack gives for its parent message.
    parent = next(c for c in standin.calls_to("chat.postMessage") if "thread_ts" not in c.params)
    (asked,) = standin.calls_to("chat.getPermalink")
    assert (asked.params["channel"], asked.params["message_ts"]) == (
        parent.response["channel"], parent.response["ts"]
    )
    view = standin.home_tabs["U0FORGE"]
    link = home_button(view, "🟢 *phase-4*")
    assert link["url"] == asked.response["permalink"] and link["text"]["text"] == "Open thread"
    assert await click_in_home(http, bot, standin, "U0FORGE", link) == 200  # acked, nothing else

    # Forge is paged: Acknowledge, from the Home tab.
    assert "Paging you (1)" in render(view)
    ack = home_button(view, "• `#1`")
    assert ack["text"]["text"] == "Acknowledge"
    assert await click_in_home(http, bot, standin, "U0FORGE", ack) == 200
    published = await standin.wait_for("views.publish", count=2)
    (incident,) = await incidents(bot)
    assert (incident.state, incident.acked_by) == ("acknowledged", "U0FORGE")
    view = standin.home_tabs["U0FORGE"]
    assert view["blocks"][2]["text"]["text"].startswith("Acknowledged incident #1")  # the answer
    resolve = home_button(view, "• `#1`")
    assert resolve["text"]["text"] == "Resolve" and "Incidents you hold (1)" in render(view)
    assert len(standin.calls_to("chat.getPermalink")) == 1  # a permalink is asked once

    assert await click_in_home(http, bot, standin, "U0FORGE", resolve) == 200
    await standin.wait_for("views.publish", count=len(published) + 1)
    (incident,) = await incidents(bot)
    assert incident.state == "resolved"
    home = render(standin.home_tabs["U0FORGE"])
    assert "Resolved incident #1" in home and "none is paging you" in home
    assert not standin.calls_to("chat.postEphemeral")
