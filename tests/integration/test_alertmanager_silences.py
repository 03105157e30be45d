"""Silence 1h creates a real silence in a real Alertmanager (prometheus-alertmanager): its
matchers are the alert group's labels, its end is the incident's, its author the Slack
user. While it lasts Alertmanager sends nothing for the group; Unsilence expires it and
the group's notifications flow again. Without `alertmanager.url`, or with Alertmanager
down, the bot's own silence holds and the person is told Alertmanager was not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.render import buttons as actions
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.alertmanager_server import AlertmanagerFactory, AlertmanagerServer
from tests.support.incidents import (
    ONCALL,
    alert,
    click,
    dms,
    incidents,
    post_webhook,
    settle,
    told,
    updates,
    webhook,
)
from tests.support.prometheus_server import free_port

TOKEN = "alertmanager-silence-token-0123456789"
GROUP = {"alertname": "HighErrorRate", "rollout": "phase-4"}  # the route's group_by


def config(alertmanager_url: str | None) -> str:
    url = f"\n  url: {alertmanager_url}" if alertmanager_url else ""
    return ONCALL + f"""\
alertmanager:
  bearer_token: {TOKEN}{url}
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
"""


async def silences(am: AlertmanagerServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(
        am.url + "/api/v2/silences"
    ) as response:
        assert response.status == 200
        found: list[dict[str, Any]] = await response.json()
        return found


async def until(probe: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, f"not so within {timeout}s"
        await asyncio.sleep(0.1)


async def alerts_notified(bot: RolloutBot) -> int:
    """How many of the group's alerts Alertmanager has notified the bot of (incident #1)."""
    (incident, *_) = await incidents(bot)
    return len(incident.alerts or {})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_silence_1h_silences_the_group_in_alertmanager_and_unsilence_expires_it(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    alertmanager_factory: AlertmanagerFactory,
) -> None:
    port = free_port()
    am = await alertmanager_factory(f"http://127.0.0.1:{port}", bearer_token=TOKEN)
    bot = await make_bot(config(am.url), port=port)
    standin.set_user("U0FORGE", name="forge", display_name="Forge")
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await settle(bot)

    await am.post_alerts([{"labels": {**GROUP, "severity": "critical", "instance": "a"}}])
    (page,) = await standin.wait_for(
        "chat.postMessage", lambda c: c.params.get("channel") == "U0FORGE", timeout=20
    )

    tag = await click(http, bot, standin, page.params, actions.INCIDENT_SILENCE, "U0FORGE")
    answer = await told(standin, tag)
    assert "Silenced incident #1" in answer and "for 1h" in answer
    (incident,) = await incidents(bot)
    assert incident.state == "silenced" and incident.silence_id
    assert f"Alertmanager silence `{incident.silence_id}`" in answer

    (silence,) = await silences(am)
    assert silence["id"] == incident.silence_id
    assert silence["status"]["state"] == "active"
    matchers = silence["matchers"]
    assert sorted((m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in matchers) == [
        ("alertname", "HighErrorRate", True, False),
        ("rollout", "phase-4", True, False),
    ]
    assert silence["createdBy"] == "Forge"
    assert "incident #1" in silence["comment"]
    assert incident.silenced_until is not None
    assert abs((at(silence["endsAt"]) - incident.silenced_until).total_seconds()) < 1
    assert 3590 < (at(silence["endsAt"]) - at(silence["startsAt"])).total_seconds() <= 3600

    # The thread says which silence and until when.
    (said,) = await standin.wait_for(
        "chat.postMessage", lambda c: incident.silence_id in str(c.params.get("text"))
    )
    (incident,) = await incidents(bot)  # its thread's ts, known once its post went out
    assert incident.thread_ts is not None and said.params["thread_ts"] == incident.thread_ts
    assert "silenced incident #1 in Alertmanager until <!date^" in said.params["text"]

    # A new alert of the group is silenced: Alertmanager holds it and sends nothing.
    await am.post_alerts([{"labels": {**GROUP, "severity": "critical", "instance": "b"}}])

    async def suppressed() -> bool:
        held = [a for a in await am.alerts() if a["labels"].get("instance") == "b"]
        return bool(held) and held[0]["status"]["silencedBy"] == [incident.silence_id]

    await until(suppressed)
    quiet_until = time.monotonic() + 6.0  # three group intervals (2 s) with nothing sent
    while time.monotonic() < quiet_until:
        assert await alerts_notified(bot) == 1, "Alertmanager notified a silenced group"
        await asyncio.sleep(0.2)

    # Unsilence on the incident's message: the silence expires, the group notifies again.
    await settle(bot)
    message = updates(standin)[-1]
    tag = await click(http, bot, standin, message, actions.INCIDENT_UNSILENCE, "U0FORGE")
    answer = await told(standin, tag)
    assert "Ended the silence of incident #1" in answer
    assert f"Alertmanager silence `{incident.silence_id}` is expired" in answer
    (silence,) = await silences(am)
    assert silence["status"]["state"] == "expired"
    (incident,) = await incidents(bot)
    assert incident.state == "open" and incident.silence_id is None

    async def notified_again() -> bool:
        return await alerts_notified(bot) == 2

    await until(notified_again)
    assert len(dms(standin)) >= 2  # the chain is paged again from the top


async def test_without_a_url_or_with_alertmanager_down_the_bot_says_it_was_not_told(
    make_bot: BotFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    for i, (url, expected) in enumerate((
        (None, "Alertmanager was not told (no `alertmanager.url` in the config)"),
        (f"http://127.0.0.1:{free_port()}", "Alertmanager was not told: Alertmanager at"),
    )):
        bot = await make_bot(config(url), database_url=f"sqlite+aiosqlite:///{tmp_path}/{i}.db")
        body = webhook("{}:{alertname=\"HighErrorRate\"}", [alert("HighErrorRate", "f1")])
        status, _ = await post_webhook(
            http, bot, body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200
        reply = await SlackUser(http, bot, "U0FORGE").say("silence 1 2h -- known noise")
        assert "Silenced incident #1" in reply and "for 2h" in reply
        assert expected in reply
        if url:
            assert "could not be reached" in reply
        (incident,) = await incidents(bot)
        assert incident.state == "silenced" and incident.silence_id is None
        reply = await SlackUser(http, bot, "U0FORGE").say("unsilence 1")
        assert "Ended the silence of incident #1" in reply
        await bot.stop()
