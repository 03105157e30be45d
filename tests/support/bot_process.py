"""The bot as a child process (`python -m bot serve`), for crash tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET

START_TIMEOUT = 60.0  # generous: a loaded two-core machine may take a while to import it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """`python -m bot serve` in a child process, on a fixed port and SQLite file."""

    def __init__(self, tmp_path: Path, standin: SlackStandIn, config_text: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "bot.log"
        config = tmp_path / "rollout.yml"
        config.write_text(config_text)
        self.env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": standin.api_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "ROLLOUT_CONFIG": str(config),
            "PORT": str(self.port),
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:  # the bot's log, kept to read after a failure
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(
            f"the bot did not come up within {START_TIMEOUT:g} s; see {self.log_path}"
        )

    async def kill(self) -> None:
        assert self.process is not None
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
