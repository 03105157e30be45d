"""People's names for the dashboard, by users.info, asked once and kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.services.user_names import FAILURE_SECONDS, NAME_SECONDS, UserNames
from bot.standin.web_api import SlackStandIn


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    server = SlackStandIn()
    await server.start()
    yield server
    await server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def names_from(standin: SlackStandIn, clock: Clock, wait: float = 2.0) -> UserNames:
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url, retry_handlers=[])
    return UserNames(client, clock=clock, wait_seconds=wait)


async def test_display_name_else_real_name_and_only_user_ids(standin: SlackStandIn) -> None:
    standin.set_user("U0CORA", real_name="Cora Diaz", display_name="Cora")
    standin.set_user("W0HUDSON", real_name="Hudson Lee", display_name="")
    names = names_from(standin, Clock())
    found = await names.names(["U0CORA", "W0HUDSON", "rollout-bot", "alertmanager"])
    assert found == {"U0CORA": "Cora", "W0HUDSON": "Hudson Lee"}
    assert sorted(c.params["user"] for c in standin.calls_to("users.info")) == [
        "U0CORA", "W0HUDSON"
    ]


async def test_names_are_asked_once_however_many_ask_and_again_after_an_hour(
    standin: SlackStandIn,
) -> None:
    standin.set_user("U0CORA", display_name="Cora")
    clock = Clock()
    names = names_from(standin, clock)
    standin.delay("users.info", 0.2)
    answers = await asyncio.gather(*(names.names(["U0CORA"]) for _ in range(10)))
    assert answers == [{"U0CORA": "Cora"}] * 10
    assert len(standin.calls_to("users.info")) == 1
    clock.now += NAME_SECONDS - 1
    await names.names(["U0CORA"])
    assert len(standin.calls_to("users.info")) == 1
    standin.set_user("U0CORA", display_name="Cora D.")
    clock.now += 2
    assert await names.names(["U0CORA"]) == {"U0CORA": "Cora D."}


async def test_a_failed_or_slow_lookup_shows_the_id_for_now(standin: SlackStandIn) -> None:
    standin.set_user("U0CORA", display_name="Cora")
    clock = Clock()
    names = names_from(standin, clock, wait=0.05)
    standin.fail_next("users.info", status=500)
    assert await names.names(["U0CORA"]) == {}
    clock.now += FAILURE_SECONDS - 1
    assert await names.names(["U0CORA"]) == {}  # not asked again at once
    assert len(standin.calls_to("users.info")) == 1
    clock.now += 2
    standin.delay("users.info", 0.3)
    assert await names.names(["U0CORA"]) == {}  # too slow for this render…
    async with asyncio.timeout(5):  # …there the next time, once its answer is in
        while await names.names(["U0CORA"]) != {"U0CORA": "Cora"}:
            pass  # each call waits (up to 0.05 s) for the lookup under way, asks no more
    assert len(standin.calls_to("users.info")) == 2
