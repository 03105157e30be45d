"""The "Post in thread" button under a rehearsal: the same rehearsal, run again over the
same period (so the same answer), posted with its chart in the rollout's thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.inbound.answers import answer_click
from bot.render.blocks import escape
from bot.render.rehearsal_blocks import POST_IN_THREAD, RehearsalValue
from bot.services.rehearsals import Ask, Rehearsals
from bot.services.rollouts import RolloutService

log = logging.getLogger(__name__)


def register_rehearsal_actions(
    app: AsyncApp, rehearsals: Rehearsals, service: RolloutService
) -> None:
    @app.action(POST_IN_THREAD)
    async def on_post_in_thread(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        try:
            value = RehearsalValue.decode(str(action.get("value", "")))
        except ValueError:
            log.warning("ignoring a button with a value we did not write: %r", action)
            return
        plan = value.plan if value.plan in rehearsals.plans else None
        ask = Ask(value.rollout, value.end - value.start, plan, value.start)
        problem = rehearsals.problem(ask) if value.end > value.start else "An empty period."
        if problem:
            await answer_click(service, body, user, f"Nothing was posted: {problem}")
            return
        rehearsals.in_background(lambda: rehearsals.post_in_thread(service, ask, user))
        await answer_click(
            service, body, user, f"Posting the rehearsal in the thread of {escape(ask.name)}…"
        )
