"""Socket Mode: the same commands over a websocket, acked by envelope id."""

from __future__ import annotations

import aiohttp
import pytest

from bot.app import RolloutBot
from bot.config import parse_config
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, bot_settings
from tests.support.slack_requests import post_signed, slash_body, slash_payload

ONE = "rollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n"


async def test_a_command_through_socket_mode(make_bot: BotFactory, standin: SlackStandIn) -> None:
    bot = await make_bot(ONE, slack_app_token="xapp-1-A0TEST-1-secret")
    await standin.wait_socket_connected(timeout=60)
    opened = standin.calls_to("apps.connections.open")
    assert opened and opened[0].headers["Authorization"] == "Bearer xapp-1-A0TEST-1-secret"

    ack = await standin.send_envelope("slash_commands", slash_payload("start phase-4"))
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "phase-4 is now progressing at 5 %" in ack["payload"]["text"]

    ack = await standin.send_envelope("slash_commands", slash_payload("advance 150"))
    assert "Percent must be above the current 5 and at most 100" in ack["payload"]["text"]

    posted = await standin.wait_for("chat.postMessage", count=2)
    assert posted[1].params["text"].startswith("<@U0CORA> started phase-4 0 % → 5 %")
    statuses = await bot.service.statuses()
    assert (statuses["phase-4"].percent, statuses["phase-4"].version) == (5, 1)
    history = await bot.service.history("phase-4")
    assert history[0]["source"] == "socket"


async def test_socket_mode_needs_no_signing_secret(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    """Socket Mode as documented: a bot token and an app token, no signing secret."""
    bot = await make_bot(ONE, slack_app_token="xapp-1-A0TEST-1-secret", slack_signing_secret="")
    await standin.wait_socket_connected(timeout=60)
    assert standin.calls_to("apps.connections.open")

    ack = await standin.send_envelope("slash_commands", slash_payload("start phase-4"))
    assert "phase-4 is now progressing at 5 %" in ack["payload"]["text"]
    statuses = await bot.service.statuses()
    assert statuses["phase-4"].percent == 5

    # With no secret to check signatures against, nothing over HTTP is taken for Slack.
    body = slash_body("rollback phase-4", user_id="U0CORA")
    status, reply = await post_signed(http, f"{bot.url}/slack/events", body, "any-secret")
    assert status == 404, reply
    assert "Socket Mode" in reply["error"]
    assert (await bot.service.statuses())["phase-4"].percent == 5


async def test_over_http_a_missing_signing_secret_is_named_before_anything_starts(
    standin: SlackStandIn, sqlite_url: str
) -> None:
    settings = bot_settings(standin, sqlite_url, slack_signing_secret="")
    bot = RolloutBot(parse_config(ONE), settings)
    with pytest.raises(ValueError, match=r"SLACK_SIGNING_SECRET is not set.*SLACK_APP_TOKEN"):
        await bot.start()
    assert not standin.calls
