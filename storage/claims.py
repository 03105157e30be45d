"""What one replica holds: the timers and outbox messages it claimed and is running.

On PostgreSQL each claimed item is also held by a session-level advisory lock
(`pg_try_advisory_lock`) on one connection the replica keeps open for the purpose. While the
replica lives, its locks say "mine, still running"; when it dies its connection closes and
PostgreSQL drops its locks with it, so another replica that finds the lock free on its next
poll takes the item over at once instead of waiting for the claim's lease to run out.
Claims on PostgreSQL are therefore decided by the lock, and the lease only spaces out the
retries of a handler that failed.

SQLite serves one process (`storage.sole_process` locks the file): `shared` is False and
nothing is locked in the database, but a claim found in the file that this bot does not
hold can only be a dead bot's, so it is taken over at once too (`takes_over`). Without
that lock (an in-process bot in a test), claims are decided by their lease alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

TIMER = "timer"
OUTBOX = "outbox"


def default_replica_id() -> str:
    """hostname-pid: unique among the processes that share a database."""
    return f"{socket.gethostname()}-{os.getpid()}"


def lock_key(item: str) -> int:
    """A signed 64-bit advisory lock key for an item ("timer:gates:phase-4", "outbox:42")."""
    digest = hashlib.blake2b(item.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def item_name(kind: str, key: object) -> str:
    return f"{kind}:{key}"


@contextlib.asynccontextmanager
async def claiming(claims: Claims | None) -> AsyncIterator[None]:
    """Around a claim's transaction: when it fails to commit, what it held is let go."""
    before = set(claims.held) if claims is not None else set()
    try:
        yield
    except BaseException:
        if claims is not None:
            for item in set(claims.held) - before:
                await claims.release(item)
        raise


class Claims:
    """The items this replica holds, and (on PostgreSQL) the advisory locks that show it."""

    def __init__(self, engine: AsyncEngine, replica: str, *, sole: bool = False) -> None:
        """`sole`: this bot is the only process on its SQLite file (it holds the lock)."""
        self.engine = engine
        self.replica = replica
        self.shared = engine.dialect.name == "postgresql"
        # Whether a claim this bot does not hold is known to be free unless another live
        # process holds it: asked of each item's advisory lock on PostgreSQL; on a SQLite
        # file this bot alone serves, every such claim was left by a bot that died.
        self.takes_over = self.shared or sole
        self.held: dict[str, datetime] = {}  # item → when it was claimed
        self._connection: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the lock connection

    async def hold(self, item: str, now: datetime) -> bool:
        """Take `item`, unless this bot holds it already or, on PostgreSQL, another live
        replica does (on SQLite nobody else can)."""
        if item in self.held:  # advisory locks nest: this replica must not ask twice
            return False
        if self.shared:
            try:
                got = await self._execute("SELECT pg_try_advisory_lock(:key)", item)
            except Exception:
                log.exception("could not take the lock of %s; leaving it for now", item)
                return False
            if not got:
                return False
        self.held[item] = now
        return True

    async def release(self, item: str) -> None:
        """Let go of `item`: another replica may claim it from now on."""
        if self.held.pop(item, None) is None or not self.shared:
            return
        try:
            await self._execute("SELECT pg_advisory_unlock(:key)", item)
        except Exception:  # the connection went, and every lock with it
            log.warning("could not unlock %s; its connection is gone, and the lock too", item)

    async def close(self) -> None:
        """Drop every lock at once (closing the connection does it)."""
        self.held.clear()
        async with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                try:
                    await connection.close()
                except Exception:
                    log.warning("closing the lock connection failed", exc_info=True)

    def holding(self, kind: str) -> list[str]:
        """What is held of one kind (TIMER or OUTBOX), by its key, oldest claim first."""
        prefix = f"{kind}:"
        items = sorted(self.held.items(), key=lambda pair: pair[1])
        return [item.removeprefix(prefix) for item, _ in items if item.startswith(prefix)]

    async def _execute(self, statement: str, item: str) -> bool:
        async with self._lock:
            if self._connection is None:
                connection = await self.engine.connect()
                self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                result = await self._connection.scalar(text(statement), {"key": lock_key(item)})
            except Exception:
                # A broken connection took its locks with it: what this replica runs now is
                # no longer shown to others. Start afresh on the next call.
                broken, self._connection = self._connection, None
                try:
                    await broken.invalidate()
                except Exception:
                    log.debug("invalidating the broken lock connection failed", exc_info=True)
                log.warning(
                    "the advisory lock connection broke; items this replica runs (%d) "
                    "may be taken over by another replica",
                    len(self.held),
                )
                raise
            return bool(result)
