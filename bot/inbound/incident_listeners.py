"""Bolt listeners for the incident buttons (Acknowledge, Resolve, Silence 1h, Unsilence) on the
incident's message, its pages and the App Home: ack first, call the incident service, tell
the person who clicked what happened (`bot.inbound.answers`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound.answers import HomeNotice, answer_click
from bot.inbound.payloads import opened_value
from bot.metrics import Metrics
from bot.render import buttons as actions
from bot.render.blocks import unsealed_click_text
from bot.render.seal import ButtonSeal
from bot.services.incidents import Answer, IncidentService
from bot.services.rollouts import RolloutService
from bot.services.silences import Silences

log = logging.getLogger(__name__)


def register_incident_actions(
    app: AsyncApp,
    incidents: IncidentService,
    service: RolloutService,
    metrics: Metrics,
    seal: ButtonSeal,
    slack: AsyncWebClient,
    home: HomeNotice | None = None,
    silences: Silences | None = None,
) -> None:
    """`home`: publishes the clicker's Home tab with the answer on it, for clicks there;
    `slack`: the bot's own client, which seals what it sends;
    `silences`: Silence and Unsilence through it, so Alertmanager is told too."""
    silencer = silences or Silences(incidents, None)

    @app.action(re.compile("^(" + "|".join(actions.INCIDENT_ALL) + ")$"))
    async def on_incident_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        value = opened_value(seal, action, actions.IncidentButtonValue.decode)
        if value is None:
            log.warning("refused a %s click by %s: a value this bot did not draw",
                        action.get("action_id"), user)
            await answer_click(
                service, body, user, unsealed_click_text(), client=slack, home=home
            )
            return
        answer: Answer
        if action["action_id"] == actions.INCIDENT_ACK:
            answer = await incidents.acknowledge(value.incident, user)
            verb = "ack"
        elif action["action_id"] == actions.INCIDENT_RESOLVE:
            answer = await incidents.resolve(value.incident, user)
            verb = "resolve"
        elif action["action_id"] == actions.INCIDENT_UNSILENCE:
            answer = await silencer.unsilence(value.incident, user)
            verb = "unsilence"
        else:
            answer = await silencer.silence(value.incident, user)
            verb = "silence"
        metrics.commands.labels(verb, "ok" if answer.ok else "refused").inc()
        await answer_click(service, body, user, answer.text, client=slack, home=home)
