"""Publishing the App Home tab when someone opens it.

Slack retries an event it thinks was not acknowledged, with the same `event_id`; a retry
publishes nothing twice. Publishing runs after the ack, so Slack gets its answer at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.services.overview import OverviewSource
from bot.slack.home import home_view

log = logging.getLogger(__name__)

REMEMBERED_EVENTS = 1000


class AppHome:
    def __init__(self, source: OverviewSource) -> None:
        self.source = source
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def first_time(self, event_id: str) -> bool:
        """False for an event_id seen before (Slack's retry of the same event)."""
        if not event_id:
            return True
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        while len(self._seen) > REMEMBERED_EVENTS:
            self._seen.popitem(last=False)
        return True

    async def opened(self, body: dict[str, Any], event: dict[str, Any], client: Any) -> None:
        """The `app_home_opened` listener: schedule a publish for the Home tab only."""
        if event.get("tab", "home") != "home":
            return  # the Messages tab
        if not self.first_time(str(body.get("event_id", ""))):
            log.info("ignoring a retry of event %s", body.get("event_id"))
            return
        user = str(event.get("user", ""))
        if not user:
            return
        task = asyncio.create_task(self.publish(client, user), name=f"app-home:{user}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, client: AsyncWebClient, user: str) -> None:
        view = home_view(await self.source.load(), user)
        try:
            await client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user, exc.response.get("error"))
        except Exception:
            log.exception("views.publish for %s failed", user)
