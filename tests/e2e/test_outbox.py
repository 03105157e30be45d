"""The outbox: Slack's rate limits and failures delay messages but never reorder or lose them."""

from __future__ import annotations

import itertools

import aiohttp

from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser

ONE = "rollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n"


def delivered(standin: SlackStandIn, method: str = "chat.postMessage") -> list[str]:
    return [c.params["text"] for c in standin.calls_to(method) if not c.failed]


async def test_a_429_is_waited_out_for_its_retry_after_and_order_is_kept(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE)
    standin.fail_next("chat.postMessage", status=429, retry_after=2)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    await cora.say("advance next force right after the start")
    calls = await standin.wait_for("chat.postMessage", lambda c: not c.failed, count=3)
    limited = standin.calls_to("chat.postMessage")[0]
    assert (limited.failed, limited.status) == (True, 429)
    assert calls[0].received_at - limited.received_at >= 2.0  # Retry-After honoured
    assert [c.params["text"].split("\n")[0] for c in calls] == [
        "phase-4: progressing at 5 %",
        "<@U0CORA> started phase-4 0 % → 5 %",
        "<@U0CORA> advanced phase-4 5 % → 10 %",
    ]
    assert calls[1].params["thread_ts"] == calls[0].response["ts"]
    assert calls[2].params["thread_ts"] == calls[0].response["ts"]


async def test_server_errors_are_retried_with_backoff(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE)
    standin.fail_next("chat.postMessage", status=500, times=2)
    await SlackUser(http, bot, "U0CORA").say("start")
    await standin.wait_for("chat.postMessage", lambda c: not c.failed, count=2, timeout=60)
    attempts = standin.calls_to("chat.postMessage")
    assert [c.status for c in attempts[:3]] == [500, 500, 200]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(attempts[:3])]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # 1 s, then 2 s
    assert delivered(standin).count("phase-4: progressing at 5 %") == 1
    async with http.get(f"{bot.url}/metrics") as response:
        metrics = await response.text()
    assert 'rollout_bot_outbox_delivery_failures_total{error="http_500"} 2.0' in metrics


async def test_a_permanent_error_is_dropped_and_the_channel_moves_on(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE)
    standin.fail_next("chat.postMessage", error="invalid_blocks")
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    await standin.wait_for("chat.postMessage", lambda c: not c.failed, count=1)
    # The thread parent was refused for good; the next message starts the thread instead.
    assert delivered(standin)[0].startswith("<@U0CORA> started phase-4")
    await cora.say("advance next force right after the start")
    calls = await standin.wait_for("chat.postMessage", lambda c: not c.failed, count=2)
    assert calls[1].params["thread_ts"] == calls[0].response["ts"]


async def test_channels_do_not_wait_for_each_other(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE)
    standin.fail_next("chat.postMessage", status=429, retry_after=3)
    await SlackUser(http, bot, "U0CORA").say("start")
    await standin.wait_for("chat.postMessage")  # #deployments is now rate limited for 3 s
    await bot.service.tell("C0OTHER", "U0CORA", "hello from another channel")
    ephemeral = await standin.wait_for("chat.postEphemeral", timeout=60)
    assert ephemeral[0].params["text"] == "hello from another channel"
    assert delivered(standin) == []
