"""One bot per SQLite file: an exclusive lock on `FILE.lock` for as long as the bot runs.

SQLite serves one process. Holding this lock, a bot knows that any claim it finds in the
file and does not hold itself (a timer leased, a message in the middle of delivery) was
left by a bot that died: it takes such claims over at once instead of waiting out their
lease, so a restart picks up a gate tick, a checkpoint or a page where the crash left it.
A second bot started on the same file is refused, with what to do instead.

The lock is `flock(2)`: the kernel drops it when the process ends, however it ends
(SIGKILL included), so a crashed bot never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class AnotherBot(RuntimeError):
    """Another live process serves this SQLite file."""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL and for an in-memory database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return Path(database)


class SoleProcess:
    """The lock on `FILE.lock`, taken by `acquire` and dropped by `release`."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise AnotherBot saying who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AnotherBot(
                f"{self.path.with_suffix('')} is in use by another rollout-bot (pid {holder}): "
                "SQLite serves one bot. Stop that one first, or run several replicas on "
                "PostgreSQL (DATABASE_URL=postgresql+asyncpg://…)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
