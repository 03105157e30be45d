"""Telling the person who clicked a button what happened.

A click on a message answers through the click's `response_url` (an ephemeral message in
that conversation: no `chat.postEphemeral`, which needs the bot in the channel). A click in
the App Home has no `response_url`: the Home tab is published again, with the answer at its
top. Anything else falls back to an ephemeral message in the configured channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.services.responses import queue_answer
from bot.services.rollouts import RolloutService
from storage.repository import Repository

log = logging.getLogger(__name__)

# Publishes the Home tab for a user with a notice at its top
# (`bot.inbound.app_home_listener.AppHome`).
HomeNotice = Callable[[Any, str, str], Awaitable[None]]


async def answer_click(
    service: RolloutService,
    body: dict[str, Any],
    user: str,
    text: str,
    *,
    client: Any = None,
    home: HomeNotice | None = None,
) -> None:
    url = str(body.get("response_url") or "")
    if url:
        async with service.sessions() as session, session.begin():
            queue_answer(Repository(session), url, user, text, service.clock.now())
        service.notify()
        return
    if (body.get("container") or {}).get("type") == "view" and home is not None:
        await home(client, user, text)
        return
    channel = str((body.get("channel") or {}).get("id") or service.channel)
    await service.tell(channel, user, text)
