"""A real Alertmanager (prometheus-alertmanager) notifying the bot through its webhook."""

from __future__ import annotations

import json

import aiohttp

from bot.standin.web_api import Call, SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.alertmanager_server import AlertmanagerFactory
from tests.support.incidents import ONCALL, incident_log, incidents, settle

TOKEN = "alertmanager-real-token-0123456789"
CONFIG = ONCALL + f"""\
alertmanager:
  bearer_token: {TOKEN}
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
"""
LABELS = {"alertname": "HighErrorRate", "rollout": "phase-4", "severity": "critical"}


async def test_alertmanager_opens_pages_and_resolves(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    alertmanager_factory: AlertmanagerFactory,
) -> None:
    bot = await make_bot(CONFIG)
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await settle(bot)
    am = await alertmanager_factory(bot.url, bearer_token=TOKEN)

    await am.post_alerts(
        [{"labels": LABELS, "annotations": {"summary": "5xx above 0.5 % on phase-4"}}]
    )

    def is_page(call: Call) -> bool:
        return call.params.get("channel") == "U0FORGE"

    (page,) = await standin.wait_for("chat.postMessage", is_page, timeout=20)
    assert "5xx above 0.5 % on phase-4" in page.params["text"]
    (incident,) = await incidents(bot)
    assert incident.source == "alertmanager" and incident.rollout == "phase-4"
    assert incident.state == "open"
    # The critical alert at 5 % held the rollout.
    status = (await bot.service.statuses())["phase-4"]
    assert status.state.value == "paused" and "critical alert" in status.hold_reason
    # The incident message and the mention are in the rollout's thread.
    await settle(bot)
    (incident,) = await incidents(bot)
    rollout_row_thread = incident.thread_ts
    thread = [
        c.params
        for c in standin.calls_to("chat.postMessage")
        if c.params.get("thread_ts") == rollout_row_thread
    ]
    assert any("Incident #1" in p["text"] for p in thread)
    assert any(p["text"].startswith("<@U0FORGE> you are paged") for p in thread)
    posted = len(standin.calls_to("chat.postMessage"))

    await am.resolve(LABELS)

    def resolved(call: Call) -> bool:
        return "Resolved by Alertmanager" in json.dumps(call.params.get("blocks", ""))

    def in_the_thread(call: Call) -> bool:
        return resolved(call) and not str(call.params["channel"]).startswith("D")

    (edit,) = await standin.wait_for("chat.update", in_the_thread, timeout=20)
    assert edit.params["ts"] == incident.message_ts
    (page,) = await standin.wait_for("chat.update", lambda c: resolved(c) and c is not edit)
    assert str(page.params["channel"]).startswith("D")  # Forge's page says so too
    (incident,) = await incidents(bot)
    assert incident.state == "resolved" and incident.resolved_by == "alertmanager"
    await settle(bot)
    assert len(standin.calls_to("chat.postMessage")) == posted  # edited, nobody pinged
    verbs = [e.verb for e in await incident_log(bot, incident.id)]
    assert verbs[:2] == ["opened", "paged"] and verbs[-1] == "resolved"
