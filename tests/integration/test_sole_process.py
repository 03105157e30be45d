"""One bot per SQLite file: a second is refused with what to do instead; the lock goes with
its holder, and PostgreSQL or an in-memory database take none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.sole_process import AnotherBot, SoleProcess, sqlite_file


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    first, second = SoleProcess(tmp_path / "bot.db"), SoleProcess(tmp_path / "bot.db")
    first.acquire()
    with pytest.raises(AnotherBot) as refused:
        second.acquire()
    message = str(refused.value)
    assert f"{tmp_path / 'bot.db'} is in use by another rollout-bot (pid {os.getpid()})" in message
    assert "PostgreSQL" in message  # what to do instead, for several replicas
    first.release()
    second.acquire()
    second.release()


def test_only_a_sqlite_file_is_locked() -> None:
    assert sqlite_file("sqlite+aiosqlite:////var/lib/bot/rollout-bot.db") == Path(
        "/var/lib/bot/rollout-bot.db"
    )
    assert sqlite_file("sqlite+aiosqlite://") is None
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file("postgresql+asyncpg://bot@db/rollouts") is None
