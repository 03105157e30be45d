"""R4: the database is busy (another process holds SQLite's write lock past the busy
timeout) or its disk is full (a 2 MiB tmpfs, filled with a file). A command then gets a
clear "try again" ephemeral answer, never a 5xx; nothing is half-written (the rollout row
and its audit log agree, unchanged); and once the lock is let go or space is back, the
very same bot takes the command (no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import RolloutBot
from bot.standin.web_api import SlackStandIn
from tests.chaos.conftest import figures, scaled
from tests.conftest import SECRET, TWO_ROLLOUTS, BotFactory
from tests.support.slack_requests import post_signed, slash_body

BUSY = "The bot's database is busy with another change right now, so nothing was done."
FULL = "The bot's database cannot take a change right now (its disk is full)"
LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # holds the write lock until the test closes our stdin
db.execute("ROLLBACK")
"""


async def command(
    http: aiohttp.ClientSession, bot: RolloutBot, standin: SlackStandIn, text: str, tag: str
) -> str:
    """What the person who typed `text` reads: the ack, or the answer that follows it at
    the response_url when the bot needed more than Slack's three seconds."""
    body = slash_body(text, user_id="U0CORA", response_url=standin.response_url(tag))
    status, reply = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert status == 200, (status, reply)
    assert reply["response_type"] == "ephemeral", reply
    if reply["text"] != "Working on it… the answer follows here.":
        return str(reply["text"])
    (late,) = await standin.wait_for(f"response_url:{tag}", timeout=60)
    assert late.params["response_type"] == "ephemeral"
    return str(late.params["text"])


async def state(http: aiohttp.ClientSession, bot: RolloutBot) -> dict[str, Any]:
    async with http.get(f"{bot.url}/api/rollouts/phase-4") as response:
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


def agree(data: dict[str, Any]) -> tuple[str, int, int]:
    """The row and its audit log agree: one event per version the row has moved."""
    assert data["version"] == len(data["events"]), data
    return data["state"], data["version"], len(data["events"])


@contextlib.asynccontextmanager
async def write_lock(path: Path) -> AsyncIterator[None]:
    """Another process holds the database's write lock while the block runs."""
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert locker.stdout is not None
        assert (await locker.stdout.readline()).strip() == b"locked"
        yield
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        await asyncio.wait_for(locker.wait(), 60)


async def test_a_busy_database_answers_try_again_and_the_bot_goes_on(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    rounds = scaled(1, 5)
    started = time.monotonic()
    bot = await make_bot(TWO_ROLLOUTS)
    path = Path(sqlite_url.split("///", 1)[1])
    for i in range(rounds):
        before = agree(await state(http, bot))
        async with write_lock(path):
            said = await command(http, bot, standin, "pause phase-4 x" if i else
                                 "start phase-4", f"busy-{i}")
        assert said.startswith(BUSY) and "Try again in a moment." in said, said
        assert agree(await state(http, bot)) == before  # nothing half-written
        # The lock is let go: the same bot takes the command, as it was typed again.
        said = await command(http, bot, standin, "status phase-4", f"status-{i}")
        assert "phase-4" in said
        said = await command(http, bot, standin, "pause phase-4 x" if i else "start phase-4",
                             f"again-{i}")
        expected = "paused" if i else "now progressing at 5 %"
        assert expected in said, said
        after = agree(await state(http, bot))
        assert after[1] == before[1] + 1
        if i:
            resumed = await command(http, bot, standin, "resume phase-4", f"r-{i}")
            assert "now progressing at 5 %" in resumed
    figures(
        "R4 database busy", rounds=rounds, try_again_answers=rounds,
        half_written=0, restarts=0, seconds=round(time.monotonic() - started, 1),
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own, or a skip saying why there is none."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs for a full disk: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a full disk: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Fill the disk to its last byte with one file; return it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left to flush
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


async def test_a_full_disk_answers_try_again_and_the_bot_recovers_when_space_is_back(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession,
    small_disk: Path,
) -> None:
    rounds = scaled(1, 3)
    started = time.monotonic()
    url = f"sqlite+aiosqlite:///{small_disk / 'bot.db'}"
    bot = await make_bot(TWO_ROLLOUTS, database_url=url)
    assert "now progressing at 5 %" in await command(http, bot, standin, "start phase-4", "s")
    refused = 0
    for i in range(rounds):
        before = agree(await state(http, bot))
        filler = fill(small_disk)
        # Several commands while full: each is answered, none writes half of itself.
        for j, text in enumerate(("pause phase-4 disk test", "advance next phase-4 force x")):
            said = await command(http, bot, standin, text, f"full-{i}-{j}")
            assert said.startswith(FULL), said
            refused += 1
            assert agree(await state(http, bot)) == before
        # Space is back: the same bot, not restarted, takes the command.
        filler.unlink()
        said = await command(http, bot, standin, "pause phase-4 disk test", f"back-{i}")
        assert "paused" in said, said
        assert agree(await state(http, bot))[1] == before[1] + 1
        resumed = await command(http, bot, standin, "resume phase-4", f"res-{i}")
        assert "now progressing at 5 %" in resumed
    # What waited in the outbox while the disk was full is delivered now.
    await asyncio.wait_for(_outbox_empty(bot), timeout=180)
    figures(
        "R4 disk full", rounds=rounds, try_again_answers=refused, half_written=0,
        restarts=0, seconds=round(time.monotonic() - started, 1),
    )


async def _outbox_empty(bot: RolloutBot) -> None:
    from storage.repository import Repository

    while True:
        async with bot.service.sessions() as session:
            if await Repository(session).outbox_depth() == 0:
                return
        bot.outbox.kick.set()
        await asyncio.sleep(0.05)
