"""Once someone acknowledges (or resolves) an incident, every page it sent by direct
message is edited in place: the buttons give way to who took it and when, as on the
incident's message in the thread."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.render import buttons as actions
from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET, BotFactory
from tests.integration.test_escalation_chain import config, walk
from tests.support.incidents import dm_updates, incidents, open_via_opener, settle, updates
from tests.support.slack_requests import block_action_body, post_signed


async def press(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    standin: SlackStandIn,
    message: dict[str, Any],
    action_id: str,
    user: str,
    channel: str,
) -> str:
    """Press a button on a message as Slack stores it; returns what the presser was told."""
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    button = next(b for b in buttons if b["action_id"] == action_id)
    tag = f"{user}-{time.monotonic_ns()}"
    body = block_action_body(
        action_id,
        button["value"],
        user_id=user,
        channel_id=channel,
        message_ts=message["ts"],
        response_url=standin.response_url(tag),
    )
    status, _ = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert status == 200
    (answer,) = await standin.wait_for(f"response_url:{tag}", timeout=60)
    return str(answer.params["text"])


def pages_as_shown(standin: SlackStandIn, user: str) -> list[dict[str, Any]]:
    """The pages in the user's direct messages with the bot, as Slack shows them now."""
    return [m for m in standin.messages(user) if "incident #1" in str(m.get("text", "")).lower()]


async def test_an_acknowledged_incident_edits_every_page_in_place(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_usergroup("S0LEADS", ["U0LEAD1", "U0LEAD2"])
    clock = ManualClock()
    bot = await make_bot(config(), clock=clock)
    await open_via_opener(bot)
    paged = await walk(bot, standin, clock, 11)
    assert [who for _, who in paged] == ["U0FORGE", "U0HUDSON", "U0LEAD1", "U0LEAD2"]
    posted = {
        c.params["channel"]: (c.response["channel"], c.response["ts"])
        for c in standin.calls_to("chat.postMessage")
        if str(c.params["channel"]).startswith("U")
    }
    assert not dm_updates(standin)

    # Hudson acknowledges from his page.
    (hudson_page,) = pages_as_shown(standin, "U0HUDSON")
    told = await press(
        http, bot, standin, hudson_page, actions.INCIDENT_ACK, "U0HUDSON", posted["U0HUDSON"][0]
    )
    assert told.startswith("Acknowledged incident #1")
    await settle(bot)
    (incident,) = await incidents(bot)
    acked_at = int(incident.acked_at.timestamp()) if incident.acked_at else 0
    # Each page was edited where it was posted, once, to the same words as the thread says.
    edited = {(p["channel"], p["ts"]) for p in dm_updates(standin)}
    assert edited == set(posted.values()) and len(dm_updates(standin)) == 4
    thread_status = updates(standin)[-1]["blocks"][1]["elements"][0]["text"]
    for user in posted:
        (page,) = pages_as_shown(standin, user)
        assert [b["type"] for b in page["blocks"]] == ["section", "context"]  # no buttons
        line = page["blocks"][1]["elements"][0]["text"]
        assert line.startswith(f"Acknowledged by <@U0HUDSON> <!date^{acked_at}^")
        assert line.endswith("; escalation stopped")
        assert thread_status.startswith(line)
        assert page["blocks"][0]["text"]["text"].startswith(
            "👀 You were paged for incident #1 in *phase-4*"
        )
        assert "Acknowledge to stop the escalation" not in json.dumps(page)

    # Resolved from the thread: the pages say so too, and who acknowledged it.
    thread_message = next(
        m for m in standin.messages("#deployments") if m["ts"] == incident.message_ts
    )
    told = await press(
        http, bot, standin, thread_message, actions.INCIDENT_RESOLVE, "U0FORGE",
        incident.message_channel or "",
    )
    assert told.startswith("Resolved incident #1")
    await settle(bot)
    assert len(dm_updates(standin)) == 8
    for user in posted:
        (page,) = pages_as_shown(standin, user)
        line = page["blocks"][1]["elements"][0]["text"]
        assert line.startswith("Resolved by <@U0FORGE> <!date^")
        assert line.endswith("· acknowledged by <@U0HUDSON>")
        assert page["blocks"][0]["text"]["text"].startswith("✅ You were paged")
