"""The safety policy over real signed HTTP: the two-person rule, freeze windows, the
emergency freeze, owners and user groups, and the audit of each. Time is a ManualClock."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.demo.terminal import render
from bot.standin.web_api import Call, SlackStandIn
from tests.conftest import SECRET, BotFactory, SlackUser
from tests.e2e.test_dashboard import home_opened, send_event
from tests.e2e.test_slash_commands import answered
from tests.support.slack_requests import block_action_body, post_signed

# Monday 2026-11-30, 10:00 in Paris (09:00 UTC): no freeze window holds.
MONDAY_10 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

CONFIG = """
channel: "#deployments"
timezone: Europe/Paris
roles:
  leads: [U0CORA, U0ALEX, S0LEADS]
  operators: [U0FORGE]
policy:
  two_person: {from_percent: 50, confirm_within: 30m}
  freeze:
    - {daily: "18:00-08:00", reason: nights}
    - {days: [sat, sun], reason: weekend}
plans:
  quick:
    stages:
      - {percent: 5, soak: 1h}
      - {percent: 10, soak: 1h}
      - {percent: 25, soak: 1h}
      - {percent: 50, soak: 1h}
      - {percent: 100, soak: 1h}
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: quick
  - name: search-v2
    flag: search_v2
    plan: quick
    advance: auto
    owners: [S0SEARCH]
"""


async def state(http: aiohttp.ClientSession, bot: RolloutBot, name: str) -> dict[str, Any]:
    async with http.get(f"{bot.url}/api/rollouts/{name}") as response:
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


async def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Wait for a condition the bot reaches by itself (timers, the outbox). `check` may
    be a coroutine function or a plain one."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def thread_replies(standin: SlackStandIn) -> list[Call]:
    return [c for c in standin.calls_to("chat.postMessage") if "thread_ts" in c.params]


async def press(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    standin: SlackStandIn,
    message: Call,
    action_id: str,
    user: str,
) -> str:
    """Click a button on a message the bot posted, as Slack sends the click; what the
    clicker is told through the click's response_url."""
    buttons = [
        e for b in message.params["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    button = next(b for b in buttons if b["action_id"] == action_id)
    tag = f"press-{next(_presses)}"
    body = block_action_body(
        action_id,
        button["value"],
        user_id=user,
        channel_id=message.response["channel"],
        message_ts=message.response["ts"],
        action_ts=f"{time.time():.6f}",
        response_url=standin.response_url(tag),
    )
    status, _ = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert status == 200
    return await answered(standin, tag)


_presses = itertools.count(1)


async def walk_to_25(cora: SlackUser, clock: ManualClock, name: str = "phase-4") -> None:
    assert "progressing at 5 %" in await cora.say(f"start {name}")
    for percent in (10, 25):
        await clock.advance(HOUR)
        assert f"progressing at {percent} %" in await cora.say(f"advance next {name}")


async def test_two_person_rule_ask_refuse_own_confirm_refuse_without_role_then_confirm(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(MONDAY_10)
    bot = await make_bot(CONFIG, clock=clock)
    cora, alex, forge = (SlackUser(http, bot, u) for u in ("U0CORA", "U0ALEX", "U0FORGE"))
    await walk_to_25(cora, clock)
    # The API says when the stage will have soaked, as the bot judges it.
    soaked_at = MONDAY_10 + 3 * HOUR
    assert (await state(http, bot, "phase-4"))["soak_ends_at"] == soaked_at.isoformat()
    await clock.advance(HOUR)

    reply = await cora.say("advance next phase-4")
    assert reply.startswith("Asked: advance to 50 % of phase-4 needs a second person")
    assert (await state(http, bot, "phase-4"))["percent"] == 25
    request = (
        await standin.wait_for(
            "chat.postMessage", lambda c: "asked to move" in c.params.get("text", "")
        )
    )[0]
    assert request.params["text"].startswith("<@U0CORA> asked to move phase-4 25 % → 50 %")
    pending = (await state(http, bot, "phase-4"))["pending"]
    assert pending["asker"] == "U0CORA" and pending["to_percent"] == 50

    # The asker cannot confirm, typed or by the button.
    typed = await cora.say("confirm phase-4")
    assert "You asked for this step, so you cannot confirm it" in typed
    assert "<@U0ALEX>" in typed and "<@U0CORA>" not in typed.split("Who may:")[1]
    own = await press(http, bot, standin, request, "rollout_confirm", "U0CORA")
    assert "you cannot confirm it" in own
    # An operator holds no role that may advance.
    operator = await press(http, bot, standin, request, "rollout_confirm", "U0FORGE")
    assert "You may not advance phase-4: that needs a lead" in operator
    assert "needs a lead" in await forge.say("confirm phase-4")
    assert (await state(http, bot, "phase-4"))["percent"] == 25

    done = await press(http, bot, standin, request, "rollout_confirm", "U0ALEX")
    assert "now progressing at 50 % (asked by <@U0CORA>, confirmed by you)" in done
    after = await state(http, bot, "phase-4")
    assert after["percent"] == 50 and after["pending"] is None
    advance = after["events"][-1]
    assert advance["verb"] == "advance"
    assert advance["policy"] == {"asked_by": "U0CORA", "confirmed_by": "U0ALEX"}
    assert [e["verb"] for e in after["events"]][-2:] == ["request", "advance"]
    line = await eventually(
        lambda: ([c for c in thread_replies(standin) if "confirmed by" in c.params["text"]]),
        "the confirmed advance in the thread",
    )
    assert (
        line[0]
        .params["text"]
        .startswith(
            "<@U0ALEX> advanced phase-4 25 % → 50 % (button) (asked by <@U0CORA>, "
            "confirmed by <@U0ALEX>)"
        )
    )
    history = await alex.say("history phase-4")
    assert "— asked by <@U0CORA>, confirmed by <@U0ALEX>" in history


async def test_a_request_expires_and_a_stale_confirm_does_nothing(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(MONDAY_10)
    bot = await make_bot(CONFIG, clock=clock)
    cora, alex, forge = (SlackUser(http, bot, u) for u in ("U0CORA", "U0ALEX", "U0FORGE"))
    await walk_to_25(cora, clock)
    await clock.advance(HOUR)

    assert (await cora.say("advance 50 phase-4")).startswith("Asked:")
    await clock.advance(timedelta(minutes=31))

    async def expired() -> bool:
        return (await state(http, bot, "phase-4"))["pending"] is None

    await eventually(expired, "the request to expire")
    texts = await eventually(
        lambda: (
            [c.params["text"] for c in thread_replies(standin) if "let expire" in c.params["text"]]
        ),
        "the expiry in the thread",
    )
    assert "let expire the request to move phase-4" in texts[0]
    assert "has no step waiting for confirmation" in await alex.say("confirm phase-4")
    assert (await state(http, bot, "phase-4"))["percent"] == 25

    # Asked again; the rollout is paused meanwhile; the old request's Confirm does nothing.
    assert (await cora.say("advance 50 phase-4")).startswith("Asked:")
    request = (
        await standin.wait_for(
            "chat.postMessage", lambda c: "asked to move" in c.params.get("text", ""), count=2
        )
    )[1]
    assert "paused at 25 %" in await forge.say("pause phase-4 -- db failover")
    stale = await press(http, bot, standin, request, "rollout_confirm", "U0ALEX")
    assert stale.startswith(
        "That request is no longer open: phase-4 changed since it was asked and is now "
        "paused at 25 %. Nothing was done."
    )
    final = await state(http, bot, "phase-4")
    assert (final["state"], final["percent"], final["pending"]) == ("paused", 25, None)


async def test_a_freeze_window_refuses_an_advance_and_delays_an_auto_advance_until_its_end(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(MONDAY_10 + 7 * HOUR + timedelta(minutes=30))  # 17:30 in Paris
    bot = await make_bot(CONFIG, clock=clock)
    cora, forge = SlackUser(http, bot, "U0CORA"), SlackUser(http, bot, "U0FORGE")
    assert "progressing at 5 %" in await cora.say("start phase-4")
    assert "progressing at 5 %" in await cora.say("start search-v2")
    await clock.advance(HOUR)  # 18:30: the nights window holds

    refused = await cora.say("advance next phase-4")
    assert refused.startswith(
        "Advances are frozen until Tue 2026-12-01 08:00 (CET): freeze window 18:00-08:00 (nights)."
    )
    assert "Pause, rollback and ack still work." in refused
    assert (await state(http, bot, "phase-4"))["percent"] == 5
    assert "paused at 5 %" in await forge.say("pause phase-4 -- checking")
    assert "rolled back to 0 %" in await forge.say("rollback phase-4 -- not tonight")

    # search-v2's soak ended at 18:30, inside the window: it waits and says until when.
    async def waiting() -> Any:
        return (await state(http, bot, "search-v2"))["waiting"]

    told = await eventually(waiting, "search-v2 to wait for the window")
    assert told["until"] == "2026-12-01T07:00:00+00:00" and told["frozen"]
    line = await eventually(
        lambda: ([c for c in thread_replies(standin) if "does not advance" in c.params["text"]]),
        "the wait in the thread",
    )
    assert (
        "search-v2 soaked green at 5 %, but does not advance to 10 % yet: freeze window"
        in (line[0].params["text"])
    )
    assert "It goes on by itself" in line[0].params["text"]
    assert (await state(http, bot, "search-v2"))["percent"] == 5
    status = await cora.say("status search-v2")
    assert "The automatic advance waits: freeze window 18:00-08:00 (nights)" in status

    await clock.set(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))  # Tuesday 08:00 in Paris

    async def went_on() -> bool:
        return (await state(http, bot, "search-v2"))["percent"] == 10

    await eventually(went_on, "search-v2 to go on after the window")
    after = await state(http, bot, "search-v2")
    assert after["waiting"] is None and after["events"][-1]["actor"] == "rollout-bot"
    waited = next(e for e in after["events"] if e["verb"] == "wait")
    assert "nights" in waited["policy"]["window"]


async def test_the_emergency_freeze_stops_every_rollout_until_a_lead_lifts_it(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock(MONDAY_10)
    bot = await make_bot(CONFIG, clock=clock)
    cora, alex, forge = (SlackUser(http, bot, u) for u in ("U0CORA", "U0ALEX", "U0FORGE"))
    assert "progressing at 5 %" in await cora.say("start phase-4")
    assert "progressing at 5 %" in await cora.say("start search-v2")

    assert "You may not freeze every rollout: that needs a lead." in await forge.say(
        "freeze <!channel> db is on fire"
    )
    assert "A freeze needs a reason" in await cora.say("freeze")
    assert "takes no name" in await cora.say("freeze phase-4")
    assert "every advance of every rollout is frozen" in await cora.say(
        "freeze incident 4711 <!here>"
    )
    announced = await standin.wait_for(
        "chat.postMessage", lambda c: "froze every rollout" in c.params.get("text", "")
    )
    assert (
        announced[0]
        .params["text"]
        .startswith("🧊 <@U0CORA> froze every rollout: incident 4711 &lt;!here&gt;")
    )
    await clock.advance(HOUR)

    assert "Every advance is frozen: incident 4711 &lt;!here&gt;." in await alex.say(
        "advance next phase-4"
    )
    assert "Every advance is frozen" in await alex.say("advance 25 phase-4 force hotfix")

    async def search_waits() -> Any:
        return (await state(http, bot, "search-v2"))["waiting"]

    waits = await eventually(search_waits, "search-v2 to wait on the freeze")
    assert waits["until"] is None and waits["frozen"]
    status = await forge.say("status")
    assert status.startswith("🧊 Every advance is frozen since")
    assert "by <@U0CORA>: incident 4711 &lt;!here&gt;" in status
    frozen = (await state(http, bot, "phase-4"))["frozen"]
    assert frozen["emergency"] and frozen["reason"] == "incident 4711 <!here>"
    assert "paused at 5 %" in await forge.say("pause phase-4 -- still works")

    # Every surface says so: a checkpoint, the dashboard, App Home.
    def checkpoints_with_freeze() -> list[Call]:
        return [
            c
            for c in standin.calls_to("chat.postMessage")
            if c.params.get("text", "").startswith("Checkpoint")
            and "Every advance is frozen" in json.dumps(c.params["blocks"], ensure_ascii=False)
        ]

    await clock.advance(timedelta(minutes=15))
    await eventually(checkpoints_with_freeze, "a checkpoint that shows the freeze")
    async with http.get(f"{bot.url}/") as response:
        page = await response.text()
    assert "<strong>Every advance is frozen</strong>" in page
    assert "incident 4711 &lt;!here&gt;" in page
    assert await send_event(http, bot, home_opened("U0FORGE", "EvFREEZE0001")) == 200
    await standin.wait_for("views.publish")
    assert "🧊 Every advance is frozen since" in render(standin.home_tabs["U0FORGE"])

    assert "You may not lift the freeze" in await forge.say("unfreeze")
    assert "the freeze is lifted" in await alex.say("unfreeze")
    assert "Nothing is frozen." in await alex.say("unfreeze")

    async def search_went_on() -> bool:
        return (await state(http, bot, "search-v2"))["percent"] == 10

    await eventually(search_went_on, "search-v2 to go on once the freeze is lifted")
    history = await cora.say("history phase-4")
    assert "<@U0CORA> froze every rollout — incident 4711 &lt;!here&gt;" in history
    assert "<@U0ALEX> lifted the freeze on every rollout" in history
    events = (await state(http, bot, "search-v2"))["events"]
    assert [e["verb"] for e in events if e["every_rollout"]] == ["freeze", "unfreeze"]


async def test_owners_and_user_groups_from_usergroups_users_list(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_usergroup("S0SEARCH", ["U0SAM"])
    standin.set_usergroup("S0LEADS", ["U0LEE"])
    clock = ManualClock(MONDAY_10)
    bot = await make_bot(CONFIG, clock=clock)
    sam, lee = SlackUser(http, bot, "U0SAM"), SlackUser(http, bot, "U0LEE")
    stranger = SlackUser(http, bot, "U0STRANGER")

    refused = await sam.say("start phase-4")
    assert refused.startswith("You may not start phase-4: that needs a lead.")
    assert "Who may: <@U0CORA>, <@U0ALEX>, <!subteam^S0LEADS>." in refused
    assert "progressing at 5 %" in await sam.say("start search-v2")  # an owner, by group
    assert "paused at 5 %" in await sam.say("pause search-v2 -- owner's call")
    assert "You may not resume search-v2" in await stranger.say("resume search-v2")
    assert "progressing at 5 %" in await lee.say("start phase-4")  # a lead, by group
    asked = [c.params["usergroup"] for c in standin.calls_to("usergroups.users.list")]
    assert set(asked) == {"S0SEARCH", "S0LEADS"}
    # Cached: the lookups above were made once each, not once per command.
    assert len(asked) == 2
    assert json.dumps((await state(http, bot, "search-v2"))["events"][0]["actor"]) == '"U0SAM"'
