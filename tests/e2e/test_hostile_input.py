"""Hostile and careless input at every edge of a real `rollout-bot serve`: signed slash
commands and interactive payloads of every wrong shape, buttons the bot never drew,
Alertmanager notifications carrying Slack markup, and HTTP requests too big to parse.

What must hold: nothing the bot sends to Slack pings or links from outside text; no answer
is a 5xx; the log holds no traceback and no flood; no rollout changed."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.render import buttons as actions
from bot.render.seal import ButtonSeal
from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET
from tests.support.bot_process import BotProcess
from tests.support.slack_requests import (
    block_action_payload,
    post_signed,
    slash_body,
)

CONFIG = """
channel: "#deployments"
rollouts:
  - {name: phase-4, flag: phase_4_deployment}
  - {name: search-v2, flag: search_v2}
"""
HOSTILE = "<!channel> wake up <@U0EVIL> <!here> <!everyone> <!subteam^S0EVIL> " \
    "<https://evil.example|runbook>"
FROM_OUTSIDE = re.compile(
    r"<!channel>|<!here>|<!everyone>|<!subteam\^S0EVIL|<@U0EVIL|<https?://evil", re.I
)
SEAL = ButtonSeal.from_secret(SECRET)


@pytest.fixture
async def bot(tmp_path: Path, standin: SlackStandIn) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path, standin, CONFIG)
    await process.start()
    yield process
    await process.stop()


def form(payload: Any) -> str:
    return urlencode({"payload": json.dumps(payload)})


def click(standin: SlackStandIn, tag: str, action_id: str, value: str, **change: Any) -> str:
    payload = block_action_payload(action_id, value, response_url=standin.response_url(tag))
    payload.update(change)
    return form(payload)


def sealed(data: dict[str, Any]) -> str:
    return SEAL.seal(json.dumps(data, separators=(",", ":")))


def malformed_payloads(standin: SlackStandIn) -> dict[str, str]:
    good = block_action_payload(actions.PAUSE, sealed({"r": "phase-4", "v": 1}))
    view = {
        "type": "view_submission", "user": {"id": "U0CORA"},
        "view": {"id": "V1", "callback_id": "rollout_reason", "private_metadata": "{}",
                 "state": {"values": []}},
    }
    home = {"type": "event_callback", "event_id": "Ev1",
            "event": {"type": "app_home_opened", "user": {"id": "U0CORA"}, "tab": "home"}}
    return {
        "user as a string": form({**good, "user": "U0CORA"}),
        "channel as a string": form({**good, "channel": "C0DEPLOY"}),
        "container as a list": form({**good, "container": ["message"]}),
        "actions empty": form({**good, "actions": []}),
        "actions a string": form({**good, "actions": "x"}),
        "no user": form({k: v for k, v in good.items() if k != "user"}),
        "user id of markup": form({**good, "user": {"id": HOSTILE}}),
        "huge value": form({**good, "actions": [{**good["actions"][0], "value": "x" * 5000}]}),
        "action without id": form({**good, "actions": [{"value": "1"}]}),
        "response_url not a URL": form({**good, "response_url": "<!channel>"}),
        "view state as a list": form(view),
        "view without user": form({**view, "user": None}),
        "home event user as an object": json.dumps(home),
        "slash command user of markup": urlencode(
            {"command": "/rollout", "text": "status", "user_id": "<!channel>",
             "channel_id": "C0DEPLOY"}
        ),
        "slash text too long": slash_body("status " + "x" * 5000),
    }


def undrawn_buttons(standin: SlackStandIn) -> dict[str, str]:
    """Buttons the bot would never draw: each must change nothing and say so."""
    return {
        "a rollout that does not exist": click(
            standin, "gone", actions.PAUSE, sealed({"r": "gone", "v": 1})),
        "advance on a rollout that does not exist": click(
            standin, "gone-adv", actions.ADVANCE, sealed({"r": "phase-5", "v": 1})),
        "the name in upper case": click(
            standin, "upper", actions.ADVANCE, sealed({"r": "PHASE-4", "v": 1})),
        "an empty rollout": click(standin, "empty", actions.ADVANCE, sealed({"r": "", "v": 1})),
        "force appended": click(
            standin, "force", actions.ADVANCE, sealed({"r": "phase-4", "v": 1, "force": True})),
        "unsealed, as drawn before buttons were sealed": click(
            standin, "unsealed", actions.ADVANCE, '{"r":"phase-4","v":1}'),
        "sealed by another key": click(
            standin, "other-key", actions.ADVANCE,
            ButtonSeal.from_secret("another secret").seal('{"r":"phase-4","v":1}')),
        "a tampered seal": click(
            standin, "tampered", actions.ADVANCE,
            sealed({"r": "phase-4", "v": 1}).replace('"v":1', '"v":2')),
        "a confirm for a rollout that does not exist": click(
            standin, "confirm", actions.CONFIRM, sealed({"r": "gone", "q": 2})),
        "an incident id no database holds": click(
            standin, "huge-incident", actions.INCIDENT_ACK, sealed({"i": 99999999999999999999})),
        "an incident id that is a string": click(
            standin, "str-incident", actions.INCIDENT_ACK, sealed({"i": "1"})),
    }


def alert_body(**change: Any) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": f"Evil {HOSTILE}", "rollout": "phase-4", "severity": "warning"},
        "annotations": {"summary": HOSTILE, "description": f"more {HOSTILE}"},
        "startsAt": "2026-12-02T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://prom.example/graph|<!here>", "fingerprint": "f00d",
    }
    body = {
        "version": "4", "groupKey": "{}:{alertname=\"evil\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "rollout-bot", "groupLabels": {},
        "commonLabels": {"rollout": "phase-4", "severity": "warning"},
        "commonAnnotations": {"summary": HOSTILE, "description": HOSTILE},
        "externalURL": "https://evil.example|x", "alerts": [alert],
    }
    return {**body, **change}


async def rollout_state(http: aiohttp.ClientSession, bot: BotProcess) -> list[Any]:
    async with http.get(f"{bot.url}/api/rollouts") as response:
        return [(r["name"], r["state"], r["percent"], r["version"]) for r in await response.json()]


async def test_hostile_input_pings_no_one_fails_nothing_and_moves_nothing(
    bot: BotProcess, standin: SlackStandIn
) -> None:
    events = f"{bot.url}/slack/events"
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        status, reply = await post_signed(http, events, slash_body("start phase-4"), SECRET)
        assert status == 200 and "progressing at 5 %" in reply["text"], reply
        before = await rollout_state(http, bot)

        for typed in (
            f"pause nosuch {HOSTILE}", f"advance 150 {HOSTILE}", f"status {HOSTILE}",
            "ack 99999999999999999999", f"rollback {HOSTILE}", f"frobnicate {HOSTILE}",
        ):
            status, reply = await post_signed(http, events, slash_body(typed), SECRET)
            statuses[f"/rollout {typed}"] = status
            assert status == 200, (typed, reply)
            assert not FROM_OUTSIDE.search(json.dumps(reply)), (typed, reply)

        for why, body in malformed_payloads(standin).items():
            status, reply = await post_signed(http, events, body, SECRET)
            statuses[why] = status
            assert 400 <= status < 500, (why, status, reply)

        buttons = undrawn_buttons(standin)
        for why, body in buttons.items():
            status, reply = await post_signed(http, events, body, SECRET)
            statuses[why] = status
            assert status == 200, (why, status, reply)  # acknowledged, then answered

        for why, body in {
            "alert with markup everywhere": alert_body(),
            "resolved alert with markup": alert_body(status="resolved", alerts=[
                {**alert_body()["alerts"][0], "status": "resolved",
                 "endsAt": "2026-12-02T10:05:00Z"}]),
        }.items():
            async with http.post(f"{bot.url}/alertmanager", json=body) as response:
                statuses[why] = response.status
                assert response.status == 200, (why, await response.text())
        async with http.post(f"{bot.url}/alertmanager", json=alert_body(alerts="x")) as r:
            statuses["alert body of the wrong shape"] = r.status
            assert 400 <= r.status < 500

        # HTTP that aiohttp refuses before any handler: answered 400, logged on one line.
        for why, kw in {
            "an oversized header": {"headers": {"X-Big": "x" * 20_000}},
            "2,000 headers": {"headers": {f"X-H{i}": "x" for i in range(2000)}},
        }.items():
            for _ in range(5):
                async with http.get(f"{bot.url}/healthz", **kw) as response:
                    statuses[why] = response.status
                    assert 400 <= response.status < 500, why
        for _ in range(5):
            async with http.get(f"{bot.url}/{'p' * 100_000}") as response:
                statuses["a 100,000-character path"] = response.status
                assert 400 <= response.status < 500

        # Every undrawn button was answered, only to who clicked, with why nothing was done.
        for tag in ("gone", "gone-adv", "upper", "empty", "force", "unsealed", "other-key",
                    "tampered", "confirm", "huge-incident", "str-incident"):
            answer = await standin.wait_for(f"response_url:{tag}", timeout=20)
            text = answer[0].params.get("text", "")
            assert "othing was done" in text, (tag, text)
        # The alert's incident reached Slack (the thread and the channel).
        await standin.wait_for(
            "chat.postMessage", lambda c: "Incident #" in str(c.params.get("text")), timeout=20
        )
        await standin.wait_for(
            "chat.update", lambda c: "Resolved" in json.dumps(c.params), timeout=20
        )
        after = await rollout_state(http, bot)

    assert after == before, "a rollout changed"
    assert all(code < 500 for code in statuses.values()), statuses
    sent = [c for c in standin.calls if not c.method.startswith("apps.")]
    leaked = [c.describe() for c in sent if FROM_OUTSIDE.search(json.dumps(c.params))]
    assert not leaked, "\n".join(leaked)
    incident = next(c for c in sent if "Incident #" in str(c.params.get("text")))
    shown = json.dumps(incident.params)
    assert "&lt;!channel&gt; wake up" in shown  # shown as written, inert
    assert "|Source>" not in shown  # a source address that could break out is no link

    await asyncio.sleep(0)  # the log is flushed line by line
    log = bot.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log and "ERROR:" not in log, log[-3000:]
    refused_lines = [ln for ln in log.splitlines() if "refused a request" in ln]
    assert 1 <= len(refused_lines) <= 5, refused_lines  # rate-limited, not one per request
    assert all(len(ln) < 600 for ln in refused_lines)
