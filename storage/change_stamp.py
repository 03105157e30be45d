"""Reading the change stamp (`Repository.changed` raises it) as cheaply as the database
allows, on every `/rollout status`.

On a SQLite file: one plain `sqlite3` connection of its own, read-only, asked in place (a
few microseconds: in WAL mode a reader never waits for a writer). Elsewhere (PostgreSQL,
another replica's writes included): one small query on the engine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.repository import CHANGE_STAMP_ID

_QUERY = f"SELECT stamp FROM change_stamp WHERE id = {CHANGE_STAMP_ID}"
_SQLITE_WAIT_SECONDS = 0.05  # the stamp read waits this long at most (a WAL reader rarely waits)


class StampReader(Protocol):
    async def read(self) -> int: ...

    def read_now(self) -> int | None:
        """The stamp, when it can be read without waiting; else None (then `read`)."""
        ...

    def close(self) -> None: ...


class EngineStamp:
    """One query on the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def read(self) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(text(_QUERY)) or 0)

    def read_now(self) -> int | None:
        return None  # a query over the network: only ever awaited

    def close(self) -> None:
        pass


class SqliteFileStamp:
    """The stamp of a SQLite file, read on a connection of its own without leaving the
    event loop. On any trouble (the file busy past a moment, the table not there yet) the
    read goes through the engine instead."""

    def __init__(self, path: str, engine: AsyncEngine) -> None:
        self.path = path
        self.fallback = EngineStamp(engine)
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = sqlite3.connect(
                Path(self.path).resolve().as_uri() + "?mode=ro",
                uri=True,
                timeout=_SQLITE_WAIT_SECONDS,
                isolation_level=None,  # autocommit: each read sees the latest commit
                check_same_thread=False,
            )
        return self._connection

    async def read(self) -> int:
        stamp = self.read_now()
        return await self.fallback.read() if stamp is None else stamp

    def read_now(self) -> int | None:
        try:
            row = self._connect().execute(_QUERY).fetchone()
        except sqlite3.Error:
            self.close()
            return None
        return int(row[0]) if row else 0

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def stamp_reader(engine: AsyncEngine) -> StampReader:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return SqliteFileStamp(str(url.database), engine)
    return EngineStamp(engine)
