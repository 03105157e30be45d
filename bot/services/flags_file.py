"""The flags file: how the service being rolled out can learn its percentage besides
`GET /flags`; the flagd file says the same as flagd flag definitions. `FlagsFile` rewrites
a JSON file atomically (temp file in the same directory, fsync, `os.replace`) whenever its
document changes. It is kicked after every commit and also polls, so a change made by
another replica lands within a second too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.exposure import flags_document
from bot.domain.flagd import flagd_document
from bot.domain.rollout import RolloutSpec
from bot.files import replace_file
from bot.services.rollouts import status_of
from storage.repository import Repository

log = logging.getLogger(__name__)


async def read_document(
    sessions: async_sessionmaker[AsyncSession], specs: Mapping[str, RolloutSpec]
) -> dict[str, Any]:
    """The flags document as the database has it now."""
    async with sessions() as session:
        rows = await Repository(session).rollouts(specs)
    statuses = {row.name: status_of(row) for row in rows}
    updated = max((row.updated_at for row in rows), default=None)
    return flags_document(specs, statuses, updated)


async def read_flagd_document(
    sessions: async_sessionmaker[AsyncSession], specs: Mapping[str, RolloutSpec]
) -> dict[str, Any]:
    """The same flags as flagd flag definitions (`flagd_file:`)."""
    return flagd_document(await read_document(sessions, specs))


def write_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    replace_file(path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")


class FlagsFile:
    def __init__(
        self,
        path: str | Path,
        read: Callable[[], Awaitable[dict[str, Any]]],
        *,
        poll_seconds: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self.read = read
        self.poll_seconds = poll_seconds
        self.kick = asyncio.Event()
        self._written: dict[str, Any] | None = None

    async def write_if_changed(self) -> bool:
        document = await self.read()
        if document == self._written:
            return False
        await asyncio.to_thread(write_atomically, self.path, document)
        self._written = document
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.write_if_changed()
            except Exception:
                log.exception("could not write the flags file %s; trying again", self.path)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), self.poll_seconds)
            self.kick.clear()
