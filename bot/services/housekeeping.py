"""Once a day, forget what only guarded against duplicates or was already delivered:
processed Slack requests, delivered outbox messages, taken Alertmanager notifications.
The audit log, incidents and their log are kept."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from storage.incidents import Incidents
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

HOUSEKEEPING = "housekeeping"
EVERY = timedelta(days=1)
KEEP = timedelta(days=30)


class Housekeeping:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, keep: timedelta = KEEP
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.keep = keep

    async def ensure(self) -> None:
        """Set the daily run's timer if it is not set (at every start, by every replica)."""
        async with self.sessions() as session, session.begin():
            await Repository(session).ensure_timer(
                HOUSEKEEPING, HOUSEKEEPING, self.clock.now() + EVERY
            )

    async def run(self, timer: DueTimer) -> None:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            if not await repo.finish_timer(timer.key, timer.token):
                return
            removed = await repo.prune(now - self.keep)
            removed["alert_notifications"] = await Incidents(session).prune_notifications(
                now - self.keep
            )
            await repo.set_timer(HOUSEKEEPING, HOUSEKEEPING, now + EVERY)
        log.info("housekeeping removed %s", removed)
