"""`POST /alertmanager` against a bot on a free port: what it takes, what it refuses."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import RolloutBot
from bot.inbound.alertmanager_endpoint import MAX_BODY, MAX_IN_FLIGHT
from bot.standin.web_api import SlackStandIn
from storage.incidents import AlertNotificationRow, IncidentRow
from storage.models import OutboxRow
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import (
    ONCALL,
    alert,
    dms,
    incidents,
    post_webhook,
    posts,
    settle,
    updates,
    webhook,
)

TOKEN = "alertmanager-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = ONCALL + """\
alertmanager:
  %s
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
  - name: search-v2
    flag: search_v2
    plan: fast
"""


def config(alertmanager: str = f"bearer_token: {TOKEN}") -> str:
    return CONFIG % alertmanager


async def counts(bot: RolloutBot) -> tuple[int, int, int]:
    async with bot.service.sessions() as session:
        found = []
        for model in (IncidentRow, AlertNotificationRow, OutboxRow):
            found.append(int(await session.scalar(select(func.count()).select_from(model)) or 0))
    return found[0], found[1], found[2]


GOOD = webhook('{}:{alertname="HighErrorRate"}', [alert("HighErrorRate", "a1")])


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


def _alert_with(**changes: Any) -> dict[str, Any]:
    bad: dict[str, Any] = json.loads(json.dumps(GOOD))
    bad["alerts"][0].update(changes)
    for key, value in changes.items():
        if value is None:
            del bad["alerts"][0][key]
    return bad


BAD = [
    # (what, body bytes, headers, expected status)
    ("not JSON", b"{this is not json", AUTH, 400),
    ("empty body", b"", AUTH, 400),
    ("a JSON list", b"[1, 2, 3]", AUTH, 400),
    ("version 3", json.dumps({**GOOD, "version": "3"}).encode(), AUTH, 400),
    ("version as a number", json.dumps({**GOOD, "version": 4}).encode(), AUTH, 400),
    ("no groupKey", json.dumps(_without("groupKey")).encode(), AUTH, 400),
    ("no alerts", json.dumps(_without("alerts")).encode(), AUTH, 400),
    ("empty alerts", json.dumps({**GOOD, "alerts": []}).encode(), AUTH, 400),
    ("unknown status", json.dumps({**GOOD, "status": "exploded"}).encode(), AUTH, 400),
    ("alert without fingerprint", json.dumps(_alert_with(fingerprint=None)).encode(), AUTH, 400),
    ("startsAt not a time", json.dumps(_alert_with(startsAt="yesterday")).encode(), AUTH, 400),
    ("labels not a mapping", json.dumps(_alert_with(labels=["a", "b"])).encode(), AUTH, 400),
    ("label value a number", json.dumps(_alert_with(labels={"x": 1})).encode(), AUTH, 400),
    ("commonLabels null", json.dumps({**GOOD, "commonLabels": None}).encode(), AUTH, 400),
    ("huge body", b'{"version": "4", "pad": "' + b"x" * (MAX_BODY + 10) + b'"}', AUTH, 413),
    ("no credentials", json.dumps(GOOD).encode(), {}, 401),
    ("wrong bearer token", json.dumps(GOOD).encode(), {"Authorization": "Bearer nope"}, 401),
    (
        "basic auth instead of the token",
        json.dumps(GOOD).encode(),
        {"Authorization": "Basic " + base64.b64encode(b"am:" + TOKEN.encode()).decode()},
        401,
    ),
]


async def test_bad_payloads_get_a_4xx_with_the_reason_and_change_nothing(
    make_bot: BotFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(config())
    before = await counts(bot)
    caplog.set_level(logging.WARNING, logger="bot.inbound.alertmanager_endpoint")
    for what, raw, headers, expected in BAD:
        status, reply = await post_webhook(http, bot, None, raw=raw, headers=headers)
        assert status == expected, (what, status, reply)
        assert isinstance(reply, dict) and reply["error"], (what, reply)
    assert await counts(bot) == before
    assert len(BAD) >= 10
    refusals = [r for r in caplog.records if "refusing an Alertmanager" in r.getMessage()]
    assert len(refusals) == len(BAD)
    # The reason names the field.
    _, reply = await post_webhook(
        http, bot, None, raw=json.dumps(_without("groupKey")).encode(), headers=AUTH
    )
    assert "groupKey" in reply["error"]
    # And a GET is not a notification.
    async with http.get(f"{bot.url}/alertmanager", headers=AUTH) as resp:
        assert resp.status == 405


async def test_unknown_fields_are_accepted_and_ignored(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    body = webhook(
        '{}:{alertname="X"}',
        [{**alert("X", "f1"), "someNewField": {"a": 1}}],
        notification_reason="new_alerts",
        routeLabels={"team": "a"},
    )
    status, reply = await post_webhook(http, bot, body, headers=AUTH)
    assert status == 200 and reply["status"] == "opened", reply


async def test_basic_auth_when_configured(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config("basic_auth: {username: am, password: s3cret-pass}"))
    good = "Basic " + base64.b64encode(b"am:s3cret-pass").decode()
    bad = "Basic " + base64.b64encode(b"am:wrong").decode()
    assert (await post_webhook(http, bot, GOOD, headers={"Authorization": bad}))[0] == 401
    assert (await post_webhook(http, bot, GOOD, headers={"Authorization": good}))[0] == 200


async def test_a_cluster_sending_the_same_notification_acts_once(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    key = '{}:{alertname="HighErrorRate"}'
    body = webhook(key, [alert("HighErrorRate", "a1"), alert("HighErrorRate", "a2")])
    replies = await asyncio.gather(*(post_webhook(http, bot, body, headers=AUTH) for _ in range(3)))
    assert sorted(r[1]["status"] for r in replies) == ["duplicate", "duplicate", "opened"]
    # The same alerts in another order are the same notification.
    reordered = {**body, "alerts": list(reversed(body["alerts"]))}
    assert (await post_webhook(http, bot, reordered, headers=AUTH))[1]["status"] == "duplicate"
    await settle(bot)
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]
    # A new alert in the group is a new notification: the same incident, edited in place.
    grown = webhook(key, [*body["alerts"], alert("HighErrorRate", "a3")])
    _status, reply = await post_webhook(http, bot, grown, headers=AUTH)
    assert reply == {"status": "updated", "incident": 1, "held": None}
    await settle(bot)
    assert "3 firing" in updates(standin)[-1]["text"] or "3 firing" in json.dumps(
        updates(standin)[-1]["blocks"]
    )
    assert len(await incidents(bot)) == 1
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]


async def test_resolved_alert_resolves_the_incident_in_place_without_pinging(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    assert "Done" in await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await settle(bot)
    key = '{}:{alertname="Latency",rollout="phase-4"}'
    firing = webhook(key, [alert("Latency", "l1", rollout="phase-4")])
    assert (await post_webhook(http, bot, firing, headers=AUTH))[1]["status"] == "opened"
    await settle(bot)
    (incident,) = await incidents(bot)
    assert incident.rollout == "phase-4"
    rollout = await bot.service.statuses()
    assert rollout["phase-4"].state.value == "progressing"  # a warning does not hold
    thread = [p for p in posts(standin) if p.get("thread_ts") == incident.thread_ts]
    assert any("Incident #1" in p["text"] for p in thread)  # in the rollout's thread
    posted = len(posts(standin))

    resolved = webhook(key, [alert("Latency", "l1", status="resolved", rollout="phase-4")])
    _status, reply = await post_webhook(http, bot, resolved, headers=AUTH)
    assert reply["status"] == "resolved"
    await settle(bot)
    assert len(posts(standin)) == posted  # no new message, no ping
    last = updates(standin)[-1]
    assert last["ts"] == incident.message_ts
    assert "Resolved by Alertmanager" in json.dumps(last["blocks"])
    assert "actions" not in {b["type"] for b in last["blocks"]}
    (incident,) = await incidents(bot)
    assert incident.state == "resolved" and incident.live_key is None
    # The escalation stopped with it.
    await bot.stop()


async def test_a_critical_alert_holds_a_canary_rollout_only(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    lead = SlackUser(http, bot, "U0CORA")
    await lead.say("start phase-4")
    await lead.say("start search-v2")
    assert "Done:" in await lead.say("advance 25 search-v2 force past the canary for this test")
    statuses = await bot.service.statuses()
    assert statuses["phase-4"].percent == 5 and statuses["search-v2"].percent == 25

    by_flag = webhook("g1", [alert("Errors", "c1", severity="critical", flag="phase_4_deployment")])
    _, reply = await post_webhook(http, bot, by_flag, headers=AUTH)
    assert reply["held"] == "phase-4", reply
    by_name = webhook("g2", [alert("Errors", "c2", severity="critical", rollout="search-v2")])
    _status, reply = await post_webhook(http, bot, by_name, headers=AUTH)
    assert reply["held"] is None  # 25 % is past the canary tier

    statuses = await bot.service.statuses()
    assert statuses["phase-4"].state.value == "paused"
    assert "critical alert firing at 5 %: Errors" in statuses["phase-4"].hold_reason
    assert statuses["search-v2"].state.value == "progressing"
    history = await bot.service.history("phase-4")
    assert history[-1]["verb"] == "pause" and history[-1]["source"] == "alertmanager"
    assert {i.rollout for i in await incidents(bot)} == {"phase-4", "search-v2"}


async def test_holding_on_critical_alerts_can_be_switched_off(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config("hold_on_critical: false"))
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    body = webhook("g1", [alert("Errors", "c1", severity="critical", rollout="phase-4")])
    status, reply = await post_webhook(http, bot, body)
    assert status == 200 and reply["held"] is None
    assert (await bot.service.statuses())["phase-4"].state.value == "progressing"


async def test_an_alert_for_no_rollout_goes_to_the_channel(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    body = webhook("g", [alert("DiskFull", "d1", summary="disk 95 % full on db-1")])
    assert (await post_webhook(http, bot, body, headers=AUTH))[1]["status"] == "opened"
    await settle(bot)
    (incident,) = await incidents(bot)
    assert incident.rollout is None
    top = [p for p in posts(standin) if p["channel"] == "#deployments" and not p.get("thread_ts")]
    assert len(top) == 1 and "disk 95 % full on db-1" in top[0]["text"]
    assert incident.thread_ts == incident.message_ts  # its mentions go in its own thread


async def test_503_when_the_bot_cannot_take_it_now(
    make_bot: BotFactory, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    bot = await make_bot(config())
    bot.alert_intake.in_flight = MAX_IN_FLIGHT
    status, reply = await post_webhook(http, bot, GOOD, headers=AUTH)
    assert status == 503, reply
    bot.alert_intake.in_flight = 0

    # The database is locked by another writer for longer than the busy timeout.
    path = Path(sqlite_url.split("///", 1)[1])
    locker = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    await asyncio.to_thread(locker.execute, "BEGIN IMMEDIATE")  # not on the bot's loop
    try:
        status, reply = await post_webhook(http, bot, GOOD, headers=AUTH)
    finally:
        await asyncio.to_thread(locker.execute, "ROLLBACK")
        locker.close()
    assert status == 503, reply
    assert await counts(bot) == (0, 0, 0)
    # Alertmanager retries; now it goes through.
    status, reply = await post_webhook(http, bot, GOOD, headers=AUTH)
    assert status == 200 and reply["status"] == "opened"


def _at(body: dict[str, Any], starts: str, ends: str | None = None) -> dict[str, Any]:
    """`body` with every alert's startsAt (and endsAt, when given) replaced."""
    changed: dict[str, Any] = json.loads(json.dumps(body))
    for a in changed["alerts"]:
        a["startsAt"] = starts
        if ends is not None:
            a["endsAt"] = ends
    return changed


async def test_an_alert_that_fires_again_after_resolving_opens_a_new_incident(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    key = '{}:{alertname="HighErrorRate"}'
    firing = webhook(key, [alert("HighErrorRate", "a1")])
    assert (await post_webhook(http, bot, firing, headers=AUTH))[1]["status"] == "opened"
    resolved = webhook(key, [alert("HighErrorRate", "a1", status="resolved")])
    assert (await post_webhook(http, bot, resolved, headers=AUTH))[1]["status"] == "resolved"
    await settle(bot)
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]

    # The same alert (same fingerprint) fires again an hour later, sent by three members
    # of the cluster: one new incident, one page.
    again = _at(firing, "2026-11-02T10:00:00Z")
    replies = await asyncio.gather(
        *(post_webhook(http, bot, again, headers=AUTH) for _ in range(3))
    )
    assert sorted(r[1]["status"] for r in replies) == ["duplicate", "duplicate", "opened"]
    await settle(bot)
    first, second = await incidents(bot)
    assert first.state == "resolved" and second.state == "open"
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE", "U0FORGE"]
    # Alertmanager repeats it every repeat_interval: still the same notification.
    assert (await post_webhook(http, bot, again, headers=AUTH))[1]["status"] == "duplicate"

    # And it resolves again: the new incident resolves, once.
    over = _at(resolved, "2026-11-02T10:00:00Z", "2026-11-02T10:20:00Z")
    replies = await asyncio.gather(*(post_webhook(http, bot, over, headers=AUTH) for _ in range(2)))
    assert sorted(r[1]["status"] for r in replies) == ["duplicate", "resolved"]
    assert [i.state for i in await incidents(bot)] == ["resolved", "resolved"]


async def test_an_alert_of_a_firing_group_that_resolves_and_fires_again_is_taken(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(config())
    key = '{}:{alertname="DiskFull"}'
    both = webhook(key, [alert("DiskFull", "d1"), alert("DiskFull", "d2")])
    assert (await post_webhook(http, bot, both, headers=AUTH))[1]["status"] == "opened"
    one_over = webhook(key, [alert("DiskFull", "d1"), alert("DiskFull", "d2", status="resolved")])
    assert (await post_webhook(http, bot, one_over, headers=AUTH))[1]["status"] == "updated"
    refired = json.loads(json.dumps(both))
    refired["alerts"][1]["startsAt"] = "2026-11-02T09:45:00Z"
    assert (await post_webhook(http, bot, refired, headers=AUTH))[1]["status"] == "updated"
    (incident,) = await incidents(bot)
    assert incident.alerts["d2"]["status"] == "firing"
    assert (await post_webhook(http, bot, refired, headers=AUTH))[1]["status"] == "duplicate"
