"""`/rollout rehearse` through Slack: signed slash commands to the real server, a real
Prometheus backfilled with a week of history, and what the Slack stand-in receives. The
answer comes at once, the result later at the command's response_url, other commands
answer meanwhile, and the result's button posts it with its chart in the thread."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.render.rehearsal_blocks import POST_IN_THREAD
from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET, BotFactory, SlackUser
from tests.support.backfill import backfilled_prometheus, request_counters
from tests.support.prometheus_server import PrometheusServer
from tests.support.slack_requests import block_action_body, post_signed

STEP = timedelta(seconds=30)
NOW = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) // 30 * 30, UTC)
CONFIG = """
channel: "#deployments"
roles:
  leads: [U0CORA]
gates:
  error_rate:
    query: >-
      sum(rate(http_requests_total{flag="{flag}",code="500"}[1m]))
      / sum(rate(http_requests_total{flag="{flag}"}[1m]))
    fail_above: {canary: 0.005, progressive: 0.01, final: 0.01}
    interval: 30s
  errors_per_second:
    query: 'sum(rate(http_requests_total{flag="{flag}",code="500"}[1m]))'
    fail_above: 1
    interval: 30s
  traffic:
    query: 'sum(rate(http_requests_total{flag="{flag}"}[1m]))'
    fail_below: 10
    interval: 30s
rollouts:
  - {name: checkout, flag: checkout_v2, plan: safe, gates: [error_rate, errors_per_second, traffic]}
  - {name: search, flag: search_v2, plan: fast}
"""


@pytest.fixture(scope="module")
def week() -> Iterator[PrometheusServer]:
    text = request_counters(
        {"checkout_v2": lambda at: (100.0, 0.001)}, NOW - timedelta(days=7, hours=1), NOW, STEP
    )
    server = asyncio.run(backfilled_prometheus(text))
    try:
        yield server
    finally:
        server.close()


async def test_a_rehearsal_answers_at_once_and_commands_answer_while_it_runs(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    week: PrometheusServer,
) -> None:
    bot = await make_bot(CONFIG, prometheus_url=week.url)
    cora = SlackUser(http, bot, "U0CORA")
    url = standin.response_url("rehearse")
    # A month: the week Prometheus holds and three weeks it does not, so it takes a while.
    status, reply = await cora.rollout("rehearse checkout over 30d", response_url=url)
    assert status == 200 and reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Rehearsing 30d of 3 gates for checkout…")

    answered_before_result = 0
    deadline = time.monotonic() + 120
    while not standin.calls_to("response_url:rehearse"):
        assert time.monotonic() < deadline, "no rehearsal result within 120 s"
        said = await cora.say("status")
        assert "checkout" in said and "search" in said
        if not standin.calls_to("response_url:rehearse"):
            answered_before_result += 1
        await asyncio.sleep(0.05)
    assert answered_before_result >= 1  # a command answered while the rehearsal ran

    (result,) = await standin.wait_for("response_url:rehearse")
    text = str(result.params["text"])
    assert text.startswith("Rehearsal of checkout over 30d")
    assert "Prometheus holds error_rate only from" in text
    assert "traffic: " in text and "of the period without data" in text
    blocks = result.params["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    button = blocks[-1]["elements"][0]
    assert button["action_id"] == POST_IN_THREAD

    thread_url = standin.response_url("post")
    body = block_action_body(POST_IN_THREAD, button["value"], response_url=thread_url)
    status, _ = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert status == 200
    (ack,) = await standin.wait_for("response_url:post")
    assert "Posting the rehearsal in the thread of checkout" in str(ack.params["text"])
    posted = await standin.wait_for(
        "chat.postMessage",
        lambda c: "posted a rehearsal" in str(c.params.get("text")),
        timeout=120,
    )
    assert "Rehearsal of checkout over 30d" in str(posted[0].params["text"])
    await standin.wait_for("upload", timeout=60)


async def test_a_rehearsal_of_a_rollout_without_gates_says_why_not(
    make_bot: BotFactory, http: aiohttp.ClientSession, week: PrometheusServer
) -> None:
    bot = await make_bot(CONFIG, prometheus_url=week.url)
    cora = SlackUser(http, bot, "U0CORA")
    assert "search has no gates to rehearse" in await cora.say("rehearse search")
    assert "No plan is named `nope`" in await cora.say("rehearse checkout plan nope")
    assert "is not a duration" in await cora.say("rehearse checkout over soon")
