"""A body that can never be taken is the sender's mistake: a 4xx, never a 5xx.

Alertmanager retries every 5xx (and nothing else), so a body answered 5xx would come back
for ever. Deep nesting, numbers out of range and bytes that are not UTF-8 are answered
400 with the reason, at `/alertmanager` and at `/slack/events`, and change nothing.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import aiohttp
import pytest

from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET, BotFactory, SlackUser
from tests.support.incidents import alert, post_webhook, webhook
from tests.support.slack_requests import post_signed

TOKEN = "alertmanager-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = f"""
channel: "#deployments"
roles:
  leads: [U0CORA]
alertmanager:
  bearer_token: {TOKEN}
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
"""
GOOD = json.dumps(webhook('{}:{alertname="HighErrorRate"}', [alert("HighErrorRate", "a1")]))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_extra(value: str) -> bytes:
    """The good notification with one more field holding `value` (raw JSON)."""
    return (GOOD[:-1] + f', "extra": {value}}}').encode()


NEVER = [
    # (what, body, words the reason holds)
    ("10,000 [", b"[" * 10_000, "nested deeper"),
    ("10,000 [ closed", nested(10_000).encode(), "nested deeper"),
    ("900 nested objects", ('{"a":' * 900 + "1" + "}" * 900).encode(), "nested deeper"),
    ("a field nested 40 deep", with_extra(nested(40)), "nested deeper"),
    ("1e999999", with_extra("1e999999"), "out of range"),
    ("-1e400", with_extra("-1e400"), "out of range"),
    ("NaN", with_extra("NaN"), "not a JSON number"),
    ("Infinity", with_extra("Infinity"), "not a JSON number"),
    ("an integer of 100,000 digits", with_extra("9" * 100_000), "not JSON"),
    ("truncatedAlerts of 5,000 digits", GOOD.replace(
        '"truncatedAlerts": 0', '"truncatedAlerts": ' + "9" * 5000).encode(), "not JSON"),
    ("Latin-1 bytes", GOOD.replace("HighErrorRate", "Caf\xe9").encode("latin-1"), "UTF-8"),
    ("UTF-16", GOOD.encode("utf-16"), "UTF-8"),
]


async def test_alertmanager_bodies_that_can_never_be_taken_get_400_with_the_reason(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    assert '"truncatedAlerts": 0' in GOOD
    bot = await make_bot(CONFIG)
    for what, raw, words in NEVER:
        status, reply = await post_webhook(http, bot, None, raw=raw, headers=AUTH)
        assert status == 400, (what, status, reply)
        assert words in reply["error"], (what, reply)
    # Nothing was taken, and the good body still is.
    status, reply = await post_webhook(http, bot, None, raw=GOOD.encode(), headers=AUTH)
    assert (status, reply["status"]) == (200, "opened")


SLACK_NEVER = [
    ("a JSON body 10,000 [ deep", "[" * 10_000),
    ("a JSON event nested 50 deep", '{"type": "event_callback", "x": ' + nested(50) + "}"),
    ("an interaction payload 10,000 [ deep", "payload=" + quote("[" * 10_000)),
    ("an interaction payload with 1e999999",
     "payload=" + quote('{"type": "block_actions", "n": 1e999999}')),
    ("an interaction payload with a 5,000-digit integer",
     "payload=" + quote('{"type": "block_actions", "n": ' + "9" * 5000 + "}")),
    ("a JSON event with NaN", '{"type": "event_callback", "x": NaN}'),
]


@pytest.mark.parametrize(("what", "body"), SLACK_NEVER, ids=[w for w, _ in SLACK_NEVER])
async def test_signed_slack_bodies_that_can_never_be_taken_get_400(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession,
    what: str, body: str,
) -> None:
    bot = await make_bot(CONFIG)
    status, reply = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert status == 400, (what, status, reply)
    assert "neither a Slack form nor JSON" in reply["error"], reply
    # The bot is unharmed: the next command is answered, and nothing else happened.
    assert "phase-4" in await SlackUser(http, bot, "U0CORA").say("status phase-4")
    assert standin.calls_to("chat.postMessage") == []
