"""The bot as a child process (`python -m bot serve`), for crash tests and benchmarks.

`BotProcess(tmp_path, standin, config, clock_file=PATH)` runs it on a clock a test steps
(`bot.clock.write_clock_file`); `kill()` then `start()` again is a crash and a restart on the
same database; `until(SQL, holds)` waits for its SQLite file to show a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """`python -m bot serve` in a child process, on a fixed port and SQLite file.

    For replicas: `database_url` (one PostgreSQL database for all), `clock_file` (one
    stepped clock, `serve --clock-file`) and `replica_id` (REPLICA_ID, also naming the log);
    `args`: more `serve` options.
    """

    def __init__(
        self,
        tmp_path: Path,
        standin: SlackStandIn,
        config_text: str,
        *,
        database_url: str | None = None,
        clock_file: Path | None = None,
        replica_id: str | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.db_path = tmp_path / "bot.db"  # unless `database_url` names another
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / (f"{replica_id}.log" if replica_id else "bot.log")
        self.clock_file = clock_file
        self.args = list(args)  # more `serve` options
        config = tmp_path / "rollout.yml"
        config.write_text(config_text)
        self.env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": standin.api_url,
            "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{self.db_path}",
            "ROLLOUT_CONFIG": str(config),
            "PORT": str(self.port),
            **({"REPLICA_ID": replica_id} if replica_id else {}),
            **(env or {}),
        }
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, within: float = 60.0) -> None:
        clock = ["--clock-file", str(self.clock_file)] if self.clock_file else []
        with self.log_path.open("ab") as log:  # the bot's log, kept to read after a failure
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                *clock,
                *self.args,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = asyncio.get_running_loop().time() + within
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
        raise AssertionError(f"the bot did not come up within {within:g} s; see {self.log_path}")

    async def health(self) -> dict[str, Any]:
        """`GET /healthz`: which replica this is and what it holds."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/healthz") as response:
            answer: dict[str, Any] = await response.json()
            return answer

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows of the bot's SQLite file, read beside the bot (WAL: it never waits for the
        bot, nor the bot for it)."""
        db = sqlite3.connect(
            f"file:{self.db_path}?mode=ro", uri=True, timeout=30, isolation_level=None
        )
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    async def until(self, sql: str, holds: Callable[[list[tuple[Any, ...]]], bool],
                    timeout: float = 60.0) -> list[tuple[Any, ...]]:
        """Wait until the rows of `sql` satisfy `holds`; the rows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            rows = self.query(sql) if self.db_path.exists() else []
            if holds(rows):
                return rows
            if loop.time() > deadline:
                raise AssertionError(f"not so within {timeout:g}s: {sql} gave {rows}")
            await asyncio.sleep(0.02)

    async def kill(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it died by itself meanwhile
                self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, within: float = 15.0) -> None:
        """SIGTERM, as a container runtime stops it; the bot must be gone `within` seconds."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), within)
            except TimeoutError:
                await self.kill()
                raise AssertionError(
                    f"the bot did not exit within {within:g}s of SIGTERM; see {self.log_path}"
                ) from None
