"""Publishing the App Home tab when someone opens it, and after a click in it.

Slack retries an event it thinks was not acknowledged, with the same `event_id`; a retry
publishes nothing twice. Publishing runs after the ack, so Slack gets its answer at once.

Each rollout's thread is linked by its permalink, asked of `chat.getPermalink` (it needs no
scope, and knows the workspace's own address, Enterprise Grid included) once per thread:
a permalink never changes, so it is kept for as long as the bot runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.render.app_home import home_view
from bot.services.overview_reader import OverviewSource

log = logging.getLogger(__name__)

REMEMBERED_EVENTS = 1000


ThreadSource = Callable[[], Awaitable[Mapping[str, tuple[str, str]]]]


class AppHome:
    def __init__(self, source: OverviewSource, threads: ThreadSource | None = None) -> None:
        """`threads`: where each rollout's thread is, (channel, ts) by rollout name."""
        self.source = source
        self.threads = threads
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._permalinks: dict[tuple[str, str], str] = {}

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

    async def notice(self, client: AsyncWebClient, user: str, text: str) -> None:
        """After a click in the Home tab (which has no response_url): publish it again, with
        what the click did at its top."""
        await self.publish(client, user, notice=text)

    async def publish(self, client: AsyncWebClient, user: str, *, notice: str = "") -> None:
        overview = await self.source.load()
        links = await self.links(client)
        view = home_view(overview, user, threads=links, notice=notice)
        try:
            await client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user, exc.response.get("error"))
        except Exception:
            log.exception("views.publish for %s failed", user)

    async def links(self, client: AsyncWebClient) -> dict[str, str]:
        """Each rollout's thread permalink, by name; a thread Slack gives none for is left out."""
        if self.threads is None:
            return {}
        try:
            where = await self.threads()
        except Exception:
            log.exception("could not read where the rollout threads are")
            return {}
        links = {}
        for name, (channel, ts) in where.items():
            if (channel, ts) not in self._permalinks:
                try:
                    answer = await client.chat_getPermalink(channel=channel, message_ts=ts)
                except SlackApiError as exc:
                    log.warning("no permalink for %s: %s", name, exc.response.get("error"))
                    continue
                except Exception:
                    log.exception("chat.getPermalink for %s failed", name)
                    continue
                self._permalinks[(channel, ts)] = str(answer["permalink"])
            links[name] = self._permalinks[(channel, ts)]
        return links
