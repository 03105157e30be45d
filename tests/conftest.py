"""Shared fixtures: the Slack stand-in, and a real bot on a free port against it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import RolloutBot
from bot.clock import Clock
from bot.config import parse_config
from bot.settings import Settings
from bot.standin.web_api import Call, SlackStandIn
from tests.support.slack_requests import post_signed, slash_body

SECRET = "test-signing-secret"
PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

TWO_ROLLOUTS = """
channel: "#deployments"
roles:
  leads: [U0CORA]
  operators: [U0FORGE, U0HUDSON]
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
  - name: search-v2
    flag: search_v2
    plan: fast
"""


MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


def manifest_scopes() -> list[str]:
    """The bot scopes `manifest.yml` asks for: every test's Slack grants exactly these."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    return list(manifest["oauth_config"]["scopes"]["bot"])


@pytest.fixture
async def standin(request: pytest.FixtureRequest) -> AsyncIterator[SlackStandIn]:
    server = SlackStandIn(scopes=manifest_scopes())
    await server.start()
    yield server
    await server.stop()
    if request.module.__name__.endswith("test_slack_standin"):
        return  # those tests send what Slack refuses on purpose
    # Whatever a test did, nothing the bot sent was a message or view Slack would refuse
    # (failures a test injects with `fail_next` carry no validation messages).
    refused = [c.describe() for c in server.calls if _refused_by_validation(c)]
    assert not refused, "Slack would refuse:\n" + "\n".join(refused)


def _refused_by_validation(call: Call) -> bool:
    if call.error in ("no_text", "missing_scope", "not_in_channel"):
        return True  # the last two: the manifest does not ask for what the bot needs
    if call.method.startswith("response_url:") and call.error in (
        "invalid_blocks", "invalid_response_type"
    ):
        return True
    messages = (call.response.get("response_metadata") or {}).get("messages")
    return (call.error or "").startswith("invalid_blocks") and bool(messages)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'rollout-bot.db'}"


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped on leaving."""
    name = f"rollout_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    async with fresh_postgres() as url:
        yield url


def bot_settings(standin: SlackStandIn, database_url: str, **extra: Any) -> Settings:
    """Settings for a bot against the stand-in; `extra` adds or overrides any of them."""
    defaults: dict[str, Any] = {
        "slack_bot_token": "xoxb-test",
        "slack_signing_secret": SECRET,
        "slack_api_url": standin.api_url,
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": 0,
    }
    return Settings(**{**defaults, **extra})


BotFactory = Callable[..., Awaitable[RolloutBot]]


@pytest.fixture
async def make_bot(standin: SlackStandIn, sqlite_url: str) -> AsyncIterator[BotFactory]:
    bots: list[RolloutBot] = []

    async def make(
        config_text: str = TWO_ROLLOUTS,
        *,
        clock: Clock | None = None,
        database_url: str | None = None,
        metrics_source: Any = None,
        **settings: Any,
    ) -> RolloutBot:
        bot = RolloutBot(
            parse_config(config_text),
            bot_settings(standin, database_url or sqlite_url, **settings),
            clock=clock,
            metrics_source=metrics_source,
        )
        await bot.start()
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.stop()


class SlackUser:
    """Types /rollout commands into Slack: signed form posts to the bot, as Slack sends them."""

    def __init__(self, session: aiohttp.ClientSession, bot: RolloutBot, user_id: str) -> None:
        self.session = session
        self.bot = bot
        self.user_id = user_id

    async def rollout(self, text: str, **kw: Any) -> tuple[int, Any]:
        body = slash_body(text, user_id=self.user_id, **kw)
        return await post_signed(self.session, f"{self.bot.url}/slack/events", body, SECRET)

    async def say(self, text: str) -> str:
        """The ephemeral reply's text; fails the test on anything but a 200 ephemeral reply."""
        status, reply = await self.rollout(text)
        assert status == 200, (status, reply)
        assert reply["response_type"] == "ephemeral", reply
        return str(reply["text"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
