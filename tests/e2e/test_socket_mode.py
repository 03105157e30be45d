"""Socket Mode: the same commands over a websocket, acked by envelope id."""

from __future__ import annotations

from bot.slack.standin import SlackStandIn
from tests.conftest import BotFactory
from tests.support.slack_requests import slash_payload

ONE = "rollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n"


async def test_a_command_through_socket_mode(make_bot: BotFactory, standin: SlackStandIn) -> None:
    bot = await make_bot(ONE, slack_app_token="xapp-1-A0TEST-1-secret")
    await standin.wait_socket_connected(timeout=10)
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
