"""Helpers for incident tests: wait until the bot is idle, read pages, build payloads."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import RolloutBot
from bot.domain.rollout import OpenIncident
from bot.standin.web_api import SlackStandIn
from storage.incidents import IncidentLogRow, IncidentRow
from storage.models import TimerRow
from storage.repository import Repository
from tests.conftest import SECRET
from tests.support.slack_requests import block_action_body, post_signed

ZERO_TIME = "0001-01-01T00:00:00Z"


# The people and the two-level on-call chain most incident tests share; a test appends
# more levels, `repeat:`, gates and its rollouts.
ONCALL = """\
channel: "#deployments"
roles:
  leads: [U0CORA]
  operators: [U0OPS]
oncall:
  chain:
    - {user: U0FORGE, wait: 5m}
    - {user: U0HUDSON, wait: 5m}
"""


async def still_to_do(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> tuple[int, int]:
    """(messages waiting in the outbox, timers due at `now`): (0, 0) when idle."""
    async with sessions() as session:
        depth = await Repository(session).outbox_depth()
        due = await session.scalar(select(func.count()).where(TimerRow.due_at <= now))
    return depth, int(due or 0)


async def settle(bot: RolloutBot, timeout: float = 30.0) -> None:
    """Wait until nothing is due: no timer due now, no message waiting in the outbox."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        depth, due = await still_to_do(bot.service.sessions, bot.clock.now())
        if depth == 0 and not due:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"bot not idle: outbox {depth}, due timers {due}")
        bot.outbox.kick.set()
        bot.scheduler.kick.set()
        await asyncio.sleep(0.01)


def posts(standin: SlackStandIn) -> list[dict[str, Any]]:
    return [c.params for c in standin.calls_to("chat.postMessage") if not c.failed]


def dms(standin: SlackStandIn) -> list[dict[str, Any]]:
    """Direct messages: chat.postMessage to a user ID."""
    return [p for p in posts(standin) if str(p.get("channel", ""))[:1] in ("U", "W")]


def updates(standin: SlackStandIn) -> list[dict[str, Any]]:
    """Edits of messages in channels (the incident's message, a rollout's parent)."""
    return [p for p in all_updates(standin) if not str(p.get("channel", "")).startswith("D")]


def dm_updates(standin: SlackStandIn) -> list[dict[str, Any]]:
    """Edits of direct messages (pages, once someone answered)."""
    return [p for p in all_updates(standin) if str(p.get("channel", "")).startswith("D")]


def all_updates(standin: SlackStandIn) -> list[dict[str, Any]]:
    return [c.params for c in standin.calls_to("chat.update") if not c.failed]


async def open_via_opener(
    bot: RolloutBot,
    rollout: str = "phase-4",
    kind: str = "automatic_rollback",
    summary: str = "error_rate 2.1 % > 0.5 % for 5m; rolled back to 0 %",
) -> None:
    """What the control loop does: an OpenIncident effect inside a decision's transaction."""
    spec = bot.service.specs[rollout]
    assert bot.service.incidents is not None
    async with bot.service.sessions() as session, session.begin():
        effect = OpenIncident(kind, summary, "query: sum(rate(http_requests_total[1m]))")
        await bot.service.incidents.open_incident(session, spec, effect, bot.clock.now())
    bot.incidents.notify()


async def incidents(bot: RolloutBot) -> list[IncidentRow]:
    async with bot.service.sessions() as session:
        return list((await session.scalars(select(IncidentRow).order_by(IncidentRow.id))).all())


async def incident_log(bot: RolloutBot, incident_id: int) -> list[IncidentLogRow]:
    async with bot.service.sessions() as session:
        query = (
            select(IncidentLogRow)
            .where(IncidentLogRow.incident_id == incident_id)
            .order_by(IncidentLogRow.id)
        )
        return list((await session.scalars(query)).all())


def alert(
    name: str,
    fingerprint: str,
    *,
    status: str = "firing",
    severity: str = "warning",
    summary: str = "",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": summary or f"{name} is firing"},
        "startsAt": "2026-11-02T09:00:00Z",
        "endsAt": ZERO_TIME if status == "firing" else "2026-11-02T09:30:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def webhook(group_key: str, alerts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A version 4 webhook body, as Alertmanager sends it."""
    firing = any(a["status"] == "firing" for a in alerts)
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    body: dict[str, Any] = {
        "receiver": "rollout-bot",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }
    body.update(extra)
    return body


async def post_webhook(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    body: Any,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with http.post(f"{bot.url}/alertmanager", data=data, headers=hdrs) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def click(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    standin: SlackStandIn,
    dm: dict[str, object],
    action_id: str,
    user: str,
) -> str:
    """Press a button on a message (a page, the incident's message); returns the tag of the
    click's response_url."""
    blocks = dm["blocks"]
    assert isinstance(blocks, list)
    button = next(b for b in blocks[-1]["elements"] if b["action_id"] == action_id)
    tag = f"{user}-{time.monotonic_ns()}"
    body = block_action_body(
        action_id,
        button["value"],
        user_id=user,
        channel_id="D0" + user,
        message_ts="1700000000.000200",
        action_ts=f"{time.time():.6f}",
        response_url=standin.response_url(tag),
    )
    status, _ = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert status == 200
    return tag


async def told(standin: SlackStandIn, tag: str) -> str:
    """What a click was answered, only to the clicker, through its response_url."""
    (call,) = await standin.wait_for(f"response_url:{tag}", timeout=60)
    assert (call.params["response_type"], call.params["replace_original"]) == ("ephemeral", False)
    return str(call.params["text"])
