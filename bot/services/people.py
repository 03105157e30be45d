"""Who holds which role: the config names users (U…) and user groups (S…); a group's
members come from Slack's `usergroups.users.list`, cached for a few minutes.

When Slack cannot answer, the last known members stand; a group never read yet has no
members, so a step that only a group member may make is refused rather than allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.domain.policy import Person, Policy, Role

log = logging.getLogger(__name__)

GroupMembers = Callable[[str], Awaitable[list[str]]]
REFRESH = timedelta(minutes=5)


def is_group(slack_id: str) -> bool:
    return slack_id.startswith("S")


class People:
    def __init__(self, members: GroupMembers | None, clock: Clock, refresh: timedelta = REFRESH):
        self._members = members
        self.clock = clock
        self.refresh = refresh
        self._cache: dict[str, tuple[datetime, frozenset[str]]] = {}

    async def person(self, user: str, policy: Policy) -> Person:
        """`user` with the roles they hold under `policy` (a rollout's, with its owners)."""
        roles: set[Role] = set()
        for role, ids in policy.holders.items():
            if user in ids:
                roles.add(role)
                continue
            for group in (i for i in ids if is_group(i)):
                if user in await self.members(group):
                    roles.add(role)
                    break
        return Person(user, frozenset(roles))

    async def members(self, group: str) -> frozenset[str]:
        now = self.clock.now()
        cached = self._cache.get(group)
        if cached is not None and now - cached[0] < self.refresh:
            return cached[1]
        if self._members is None:
            return frozenset()
        try:
            members = frozenset(await self._members(group))
        except Exception as exc:  # Slack down or the group gone: keep what we knew
            log.warning("could not read the members of user group %s: %s", group, exc)
            return cached[1] if cached is not None else frozenset()
        self._cache[group] = (now, members)
        return members

