"""The Slack stand-in's fault modes speak Slack's real protocol to the real slack_sdk client:
5xx answers, 429 with `Retry-After`, a connection dropped after the message was posted;
and reading back takes message metadata only when asked, a DM's own ID, and pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.standin.faults import SlackFaults
from bot.standin.web_api import SlackStandIn

METADATA = {"event_type": "rollout_bot_outbox", "event_payload": {"outbox_id": 7}}


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    server = SlackStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def client(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(base_url=standin.api_url, token="xoxb-test", retry_handlers=[])


async def outcome(client: AsyncWebClient, text: str) -> tuple[str, Any]:
    try:
        response = await client.chat_postMessage(channel="#deployments", text=text)
    except SlackApiError as exc:
        return "api_error", (exc.response.status_code, exc.response.headers, exc.response.data)
    except aiohttp.ClientError as exc:
        return "disconnected", exc
    return "ok", response


async def test_faults_answer_5xx_429_bursts_and_lose_answers_after_posting(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    faults = standin.inject_faults(
        SlackFaults(server_error_rate=0.2, burst_rate=0.05, lost_answer_rate=0.1, seed=1)
    )
    assert faults is not None
    seen: dict[str, int] = {}
    for i in range(200):
        kind, detail = await outcome(client, f"message {i}")
        if kind == "api_error":
            status, headers, body = detail
            kind = str(status)
            if status == 429:
                assert headers["retry-after"] == "1"  # as Slack sends it
                assert body == {"ok": False, "error": "ratelimited"}
            else:
                assert status in (500, 502, 503)
        seen[kind] = seen.get(kind, 0) + 1
    assert seen.get("disconnected", 0) == faults.answers_lost > 0
    assert sum(seen.get(s, 0) for s in ("500", "502", "503")) == faults.answered_5xx > 0
    assert seen.get("429", 0) == faults.answered_429 > 0
    assert 3 * (faults.bursts - 1) < faults.answered_429 <= 3 * faults.bursts  # bursts of 3
    # What was posted is what Slack said ok to, and what it posted without answering.
    texts = [m["text"] for m in standin.messages("#deployments")]
    assert len(texts) == seen["ok"] + seen["disconnected"]
    lost = [c.params["text"] for c in standin.calls_to("chat.postMessage") if c.answer_lost]
    assert set(lost) <= set(texts) and len(lost) == faults.answers_lost
    standin.inject_faults(None)
    assert (await outcome(client, "after"))[0] == "ok"


async def test_faults_leave_other_methods_alone(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.inject_faults(SlackFaults(server_error_rate=1.0))
    assert (await client.auth_test())["ok"]
    assert (await outcome(client, "refused"))[0] == "api_error"


async def test_a_lost_answer_leaves_the_message_posted(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.lose_next_answer("chat.postMessage")
    assert (await outcome(client, "posted, unheard"))[0] == "disconnected"
    assert (await outcome(client, "heard"))[0] == "ok"
    assert [m["text"] for m in standin.messages("#deployments")] == ["posted, unheard", "heard"]


async def test_history_shows_metadata_only_when_asked(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="#deployments", text="hi", metadata=METADATA)
    plain = await client.conversations_history(channel=posted["channel"])
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(
        channel=posted["channel"], include_all_metadata=True
    )
    assert full["messages"][0]["metadata"] == METADATA
    reply = await client.chat_postMessage(
        channel=posted["channel"], thread_ts=posted["ts"], text="in thread", metadata=METADATA
    )
    replies = await client.conversations_replies(
        channel=posted["channel"], ts=posted["ts"], include_all_metadata=True
    )
    assert [(m["ts"], m.get("metadata")) for m in replies["messages"]] == [
        (posted["ts"], METADATA), (reply["ts"], METADATA)
    ]


async def test_metadata_slack_would_refuse_is_refused(client: AsyncWebClient) -> None:
    bad_ones: list[dict[str, Any]] = [
        {"event_type": "x"}, {"event_payload": {}}, {"event_type": "", "event_payload": {}}
    ]
    for bad in bad_ones:
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="#deployments", text="hi", metadata=bad)
        assert refused.value.response["error"] == "invalid_metadata_format"


async def test_reads_take_the_dm_id_not_the_user_id(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="U0FORGE", text="a page")
    with pytest.raises(SlackApiError) as refused:
        await client.conversations_history(channel="U0FORGE")
    assert refused.value.response["error"] == "channel_not_found"
    opened = await client.conversations_open(users="U0FORGE")
    assert opened["channel"]["id"] == posted["channel"]
    history = await client.conversations_history(channel=opened["channel"]["id"])
    assert [m["text"] for m in history["messages"]] == ["a page"]


async def test_history_and_replies_come_in_pages(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="#deployments", text="0")
    channel = parent["channel"]
    for i in range(1, 6):
        await client.chat_postMessage(channel=channel, text=str(i))
        await client.chat_postMessage(channel=channel, thread_ts=parent["ts"], text=f"r{i}")

    async def read_all(method: Any, **args: Any) -> list[str]:
        texts, cursor = [], None
        while True:
            page = await method(channel=channel, limit=2, cursor=cursor, **args)
            assert len(page["messages"]) <= 2
            texts += [m["text"] for m in page["messages"]]
            cursor = page["response_metadata"]["next_cursor"]
            assert page["has_more"] == bool(cursor)
            if not cursor:
                return texts

    assert await read_all(client.conversations_history) == ["5", "4", "3", "2", "1", "0"]
    assert await read_all(client.conversations_replies, ts=parent["ts"]) == [
        "0", "r1", "r2", "r3", "r4", "r5"
    ]
