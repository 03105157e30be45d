"""A post whose answer was lost (Slack posted it, the connection dropped) is found in the
conversation by its metadata before it is retried, and shows once: a thread's parent, a
reply in it, a page by direct message. The place it was found at is used as the answer."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.app import RolloutBot
from bot.services.posted import CHANNEL_REF, EVENT_TYPE
from bot.standin.web_api import SlackStandIn
from storage.repository import Repository
from tests.conftest import TWO_ROLLOUTS, BotFactory, SlackUser


def texts(standin: SlackStandIn, channel: str) -> list[str]:
    return [str(m.get("text", "")).split("\n")[0] for m in standin.messages(channel)]


async def outbox_empty(bot: RolloutBot, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with bot.service.sessions() as session:
            if await Repository(session).outbox_depth() == 0:
                return
        assert loop.time() < deadline, "the outbox did not empty"
        await asyncio.sleep(0.05)


async def delivered(bot: RolloutBot, standin: SlackStandIn, count: int) -> None:
    await standin.wait_for("chat.postMessage", lambda c: not c.failed, count=count, timeout=60)


async def test_a_lost_reply_and_a_lost_parent_are_found_and_shown_once(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(TWO_ROLLOUTS)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start phase-4")
    await delivered(bot, standin, 2)  # the parent and "started": the channel's ID is known

    standin.lose_next_answer("chat.postMessage")
    await cora.say("advance next phase-4 force right after the start")
    await standin.wait_for("conversations.replies", timeout=60)
    await delivered(bot, standin, 3)
    thread = standin.messages("#deployments")
    assert [t for t in texts(standin, "#deployments") if "advanced" in t] == [
        "<@U0CORA> advanced phase-4 5 % → 10 %"
    ]
    lookup = standin.calls_to("conversations.replies")[0]
    assert lookup.params["ts"] == thread[0]["ts"]
    assert str(lookup.params["include_all_metadata"]).lower() in ("true", "1")

    # A parent whose answer was lost: found at the top of the channel, and its thread is
    # where the rollout's next messages go.
    standin.lose_next_answer("chat.postMessage")
    await cora.say("start search-v2")
    await standin.wait_for("conversations.history", timeout=60)
    await delivered(bot, standin, 5)
    in_channel = standin.messages("#deployments")
    parents = [m for m in in_channel if m.get("thread_ts", m["ts"]) == m["ts"]]
    assert [str(m["text"]).split(":")[0] for m in parents] == ["phase-4", "search-v2"]
    started = [m for m in standin.messages("#deployments") if "started search-v2" in m["text"]]
    assert len(started) == 1 and started[0]["thread_ts"] == parents[1]["ts"]
    async with bot.service.sessions() as session:
        rollout = await Repository(session).rollout("search-v2")
        learnt = await Repository(session).message_ref(CHANNEL_REF + "#deployments")
    assert rollout is not None and rollout.thread_ts == parents[1]["ts"]
    assert learnt is not None and learnt.channel == standin.channel_id("#deployments")
    for message in standin.messages("#deployments"):
        assert message["metadata"]["event_type"] == EVENT_TYPE  # each names its outbox row


async def test_a_lost_page_is_found_in_the_dm_and_remembered_where_it_landed(
    make_bot: BotFactory, standin: SlackStandIn
) -> None:
    bot = await make_bot(TWO_ROLLOUTS)
    standin.lose_next_answer("chat.postMessage")
    async with bot.service.sessions() as session, session.begin():
        Repository(session).enqueue(
            "U0FORGE", "message", {"text": "🚨 a page", "ref": "test-page"}, bot.clock.now()
        )
    bot.outbox.kick.set()
    await standin.wait_for("conversations.history", timeout=60)
    opened = standin.calls_to("conversations.open")
    assert [c.params["users"] for c in opened] == ["U0FORGE"]
    (page,) = standin.messages("U0FORGE")
    assert page["text"] == "🚨 a page"
    await outbox_empty(bot)
    async with bot.service.sessions() as session:
        ref = await Repository(session).message_ref("test-page")
    assert ref is not None and (ref.channel, ref.ts) == (standin.channel_id("U0FORGE"), page["ts"])
    assert len(standin.calls_to("chat.postMessage")) == 1  # it was never posted again


async def test_a_429_after_an_unanswered_attempt_still_reads_back_before_posting(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(TWO_ROLLOUTS)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start phase-4")
    await delivered(bot, standin, 2)
    standin.fail_next("chat.postMessage", status=500)  # Slack may have posted it, or not
    standin.fail_next("chat.postMessage", status=429, retry_after=1)
    await cora.say("advance next phase-4 force right after the start")
    await delivered(bot, standin, 3)
    attempts = [c.status for c in standin.calls_to("chat.postMessage")][2:]
    assert attempts == [500, 429, 200]
    # Read back before the second attempt and again before the third: the 429 said
    # nothing of whether the first one had posted.
    assert len(standin.calls_to("conversations.replies")) == 2
    assert [t for t in texts(standin, "#deployments") if "advanced" in t] == [
        "<@U0CORA> advanced phase-4 5 % → 10 %"
    ]


async def test_a_lost_post_is_found_behind_a_page_of_newer_messages(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(TWO_ROLLOUTS)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start phase-4")
    await delivered(bot, standin, 2)
    standin.lose_next_answer("chat.postMessage")
    await cora.say("start search-v2")
    await standin.wait_for("chat.postMessage", lambda c: c.answer_lost, timeout=60)
    for i in range(250):  # people talk in the channel before the retry, a second later
        standin.seed_message("#deployments", f"chatter {i}")
    await delivered(bot, standin, 4)
    pages = standin.calls_to("conversations.history")
    assert len(pages) == 2 and pages[1].params["cursor"], [p.describe() for p in pages]
    parents = [m for m in standin.messages("#deployments") if "search-v2:" in str(m["text"])]
    assert len(parents) == 1
