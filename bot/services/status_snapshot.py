"""What `/rollout status` reads, kept in memory and read again only when the change stamp
(`storage.change_stamp`) says a rollout's status or the freeze changed, by this replica or
any other.

Each answer reads the stamp first. The same stamp as the snapshot's: nothing that status
shows has been committed since the snapshot was read, so it is the answer. Another stamp:
the snapshot is read again, statuses and freeze in one transaction that begins after that
stamp was read, so it holds at least every change the stamp counts; requests that saw the
same new stamp share one such read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.policy import EmergencyFreeze
from bot.domain.rollout import RolloutSpec, RolloutStatus
from bot.services.rollouts import freeze_of, status_of
from storage.change_stamp import StampReader
from storage.repository import Repository


@dataclass(frozen=True)
class StatusView:
    """Every rollout's status and the emergency freeze, as of one change stamp."""

    stamp: int
    statuses: dict[str, RolloutStatus]
    freeze: EmergencyFreeze | None


class StatusSnapshot:
    def __init__(
        self,
        reader: async_sessionmaker[AsyncSession],
        specs: Mapping[str, RolloutSpec],
        stamps: StampReader,
    ) -> None:
        self.reader = reader
        self.specs = specs
        self.stamps = stamps
        self._view: StatusView | None = None
        self._reading: tuple[int, asyncio.Task[StatusView]] | None = None

    def current(self) -> StatusView | None:
        """The snapshot, when the stamp can be read at once and says it is current; else
        None (then `view`)."""
        view = self._view
        if view is None:
            return None
        return view if self.stamps.read_now() == view.stamp else None

    async def view(self) -> StatusView:
        stamp = await self.stamps.read()
        view = self._view
        if view is not None and view.stamp == stamp:
            return view
        reading = self._reading
        if reading is None or reading[0] != stamp or reading[1].done():
            task = asyncio.ensure_future(self._read(stamp))
            self._reading = reading = (stamp, task)
        return await asyncio.shield(reading[1])

    async def _read(self, stamp: int) -> StatusView:
        """Read after `stamp` was: the view holds at least what that stamp counts."""
        async with self.reader() as session:
            repo = Repository(session)
            rows = await repo.rollouts(self.specs)
            freeze = freeze_of(await repo.freeze())
        view = StatusView(stamp, {row.name: status_of(row) for row in rows}, freeze)
        current = self._view
        if current is None or current.stamp < stamp:  # stamps only go up
            self._view = view
        return view
