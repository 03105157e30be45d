"""People's names for the dashboard (Slack draws `<@U…>` itself; HTML cannot), by
`users.info`, kept for an hour.

A name is the profile's display name, else the real name, else the account name. A lookup
that fails (Slack down, an unknown ID) shows the ID and is tried again after a few minutes;
one that is slow shows the ID this time and the name next time. Several pages rendering at
once ask Slack once per person.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

NAME_SECONDS = 3600.0
FAILURE_SECONDS = 300.0
WAIT_SECONDS = 2.0  # at most, per render, before showing IDs


def is_user_id(actor: str) -> bool:
    return actor[:1] in ("U", "W") and actor[1:].isalnum() and actor.isupper()


def name_of(user: Mapping[str, Any]) -> str:
    profile = user.get("profile") or {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"),
                 user.get("name")):
        if name:
            return str(name)
    return str(user.get("id", ""))


class UserNames:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.client = client
        self.clock = clock
        self.wait_seconds = wait_seconds
        self._known: dict[str, tuple[str, float]] = {}  # id → (name or "", valid until)
        self._asking: dict[str, asyncio.Task[None]] = {}

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        """The names of those of `ids` that are users and that Slack told us, by ID."""
        now = self.clock()
        wanted = {i for i in ids if is_user_id(i)}
        stale = [i for i in wanted if i not in self._known or self._known[i][1] <= now]
        tasks = [self._ask(i) for i in stale]
        if tasks:
            await asyncio.wait(tasks, timeout=self.wait_seconds)
        return {i: self._known[i][0] for i in wanted if self._known.get(i, ("", 0))[0]}

    def _ask(self, user: str) -> asyncio.Task[None]:
        task = self._asking.get(user)
        if task is None:
            task = asyncio.create_task(self._lookup(user), name=f"users.info:{user}")
            self._asking[user] = task
            task.add_done_callback(lambda _: self._asking.pop(user, None))
        return task

    async def _lookup(self, user: str) -> None:
        try:
            answer = await self.client.users_info(user=user)
        except Exception as exc:  # an unknown user, Slack down: show the ID for now
            log.warning("users.info %s failed: %s", user, exc)
        else:
            self._known[user] = (name_of(answer.get("user") or {}), self.clock() + NAME_SECONDS)
            return
        previous = self._known.get(user, ("", 0.0))[0]  # a name we had still beats the ID
        self._known[user] = (previous, self.clock() + FAILURE_SECONDS)
