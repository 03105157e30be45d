"""A compressed week of rollout, `rollout-bot serve` driven step by step, optionally SIGKILLed.

    run = WeekRun(tmp_path, config_text)                  # or WeekRun(…, postgresql_url)
    result = await run.through(start, steps, kills={3: 0.12, 40: 0.0})  # step → seconds

The bot is a child process on a SQLite file (or a PostgreSQL database), a stepped clock
(`serve --clock-file`) and a Slack stand-in of its own; its gates ask a real Prometheus
for the value at the stepped time (`--measure-at-clock`), so the same step gives the same
answers however often it is asked. Each step moves the clock (or sends a signed
`/rollout` command), then waits until the bot has done all that is due: no timer due, no
message waiting. A kill at a step SIGKILLs the bot that many real seconds after the step
began, whatever it is doing then, restarts it on the same database and waits again. The
clock never moves while the bot is down or catching up, so a run with kills must end
exactly as the run without.

`Result` holds what a user and an auditor see: the Slack transcript (each conversation's
messages as they stand, edits applied, ids and timestamps left out), the command replies,
the rollout's row, its audit log and the incidents with their logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import write_clock_file
from bot.standin.web_api import SlackStandIn
from storage.db import create_engine, reader
from tests.conftest import SECRET, manifest_scopes
from tests.support.bot_process import BotProcess
from tests.support.incidents import still_to_do
from tests.support.slack_requests import post_signed, slash_body

WAIT = 120.0  # the longest one step may take to settle, on a loaded two-core machine
_TS = re.compile(r"\b\d{10}\.\d{6}\b")
_SEAL = re.compile(r',\\?"s\\?":\\?"[0-9a-f]{32}\\?"')


@dataclass(frozen=True)
class Tick:
    """Move the clock to `at`."""

    at: datetime


@dataclass(frozen=True)
class Say:
    """`/rollout TEXT` from `user`, at the clock's current time."""

    user: str
    text: str


Step = Tick | Say


@dataclass
class Result:
    transcript: dict[str, list[dict[str, Any]]]
    replies: list[str]
    rollout: dict[str, Any]
    audit: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    settle_seconds: list[float]  # real seconds each step took to settle
    kills: int = 0
    caught_in_flight: int = 0  # kills that left a timer or a message half done
    restart_seconds: list[float] = field(default_factory=list)
    posts: int = 0  # chat.postMessage and file uploads Slack carried out
    lookups: int = 0  # conversation reads before a retry (was it posted already?)
    seconds: float = 0.0


class WeekRun:
    """`database_url`: PostgreSQL's (a fresh database) instead of a SQLite file."""

    def __init__(self, tmp_path: Path, config_text: str, database_url: str | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tmp_path = tmp_path
        self.config_text = config_text
        self.clock_file = tmp_path / "clock"
        self.database_url = database_url

    async def through(
        self, start: datetime, steps: list[Step], kills: Mapping[int, float] | None = None
    ) -> Result:
        kills = kills or {}
        standin = SlackStandIn(scopes=manifest_scopes())
        await standin.start()
        now = start
        write_clock_file(self.clock_file, now)
        bot = BotProcess(self.tmp_path, standin, self.config_text, clock_file=self.clock_file,
                         database_url=self.database_url, args=["--measure-at-clock"])
        engine = create_engine(self.database_url or f"sqlite+aiosqlite:///{bot.db_path}")
        began = time.monotonic()
        replies: list[str] = []
        settle_seconds: list[float] = []
        result_kills = caught = 0
        restarts: list[float] = []
        try:
            await bot.start(within=WAIT)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as http:
                for index, step in enumerate(steps):
                    stepped = time.monotonic()
                    if isinstance(step, Tick):
                        now = step.at
                        write_clock_file(self.clock_file, now)
                        delay = kills.get(index)
                        if delay is not None:
                            await asyncio.sleep(delay)
                            await bot.kill()
                            result_kills += 1
                            caught += await in_flight(engine)
                            restarting = time.monotonic()
                            await bot.start(within=WAIT)
                            restarts.append(time.monotonic() - restarting)
                    else:
                        status, reply = await post_signed(
                            http, f"{bot.url}/slack/events",
                            slash_body(step.text, user_id=step.user), SECRET,
                        )
                        assert status == 200, (step, status, reply)
                        replies.append(str(reply.get("text", "")))
                    await settled(engine, now, bot)
                    settle_seconds.append(time.monotonic() - stepped)
            await bot.stop(within=30)
            return Result(
                transcript=transcript(standin),
                replies=replies,
                **await records(engine),
                settle_seconds=settle_seconds,
                kills=result_kills,
                caught_in_flight=caught,
                restart_seconds=restarts,
                posts=sum(
                    1 for c in standin.calls
                    if c.method in ("chat.postMessage", "files.completeUploadExternal")
                    and not c.failed
                ),
                lookups=sum(
                    1 for c in standin.calls
                    if c.method in ("conversations.history", "conversations.replies")
                ),
                seconds=time.monotonic() - began,
            )
        finally:
            if bot.running:
                await bot.kill()
            await engine.dispose()
            await standin.stop()


async def settled(engine: AsyncEngine, now: datetime, bot: BotProcess) -> None:
    """Until the bot has done all that is due at `now`: no timer due, no message waiting."""
    sessions = reader(engine)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        pending, due = await still_to_do(sessions, now)
        if not pending and not due:
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"not settled within {WAIT:g}s at {now:%a %H:%M}: {due} timers due, "
                f"{pending} messages pending; see {bot.log_path}"
            )
        if not bot.running:
            raise AssertionError(f"the bot exited by itself; see {bot.log_path}")
        await asyncio.sleep(0.02)


async def in_flight(engine: AsyncEngine) -> int:
    """1 when the killed bot left a claim behind: a timer leased, or a message leased."""
    async with engine.connect() as connection:
        left = await connection.scalar(text(
            "SELECT (SELECT count(*) FROM timers WHERE lease_until IS NOT NULL AND claimed_by "
            "IS NOT NULL) + (SELECT count(*) FROM outbox WHERE lease_until IS NOT NULL AND "
            "delivered_at IS NULL)"
        ))
    return 1 if left else 0


def transcript(standin: SlackStandIn) -> dict[str, list[dict[str, Any]]]:
    """Each conversation's messages as a person sees them now, oldest first: text, blocks,
    files and which message a reply is in the thread of. Timestamps become their
    message's place in the conversation (`ts#3`); ids, metadata and seals are left out."""
    shown: dict[str, list[dict[str, Any]]] = {}
    for channel, messages in standin.conversations().items():
        places = {m["ts"]: f"ts#{i}" for i, m in enumerate(messages)}

        def plain(value: Any, places: dict[str, str] = places) -> Any:
            text = _SEAL.sub("", json.dumps(value, sort_keys=True, ensure_ascii=False))
            return json.loads(_TS.sub(lambda ts: places.get(ts.group(0), "ts#?"), text))

        shown[channel] = [
            {
                "text": plain(m.get("text", "")),
                "blocks": plain(m.get("blocks")),
                "thread": places.get(m.get("thread_ts", "")) if m.get("thread_ts") != m["ts"]
                else None,
                "files": [
                    {
                        "name": f.get("name"),
                        "title": f.get("title"),
                        "alt_txt": f.get("alt_txt"),
                        "sha256": hashlib.sha256(
                            standin.uploaded_files.get(f["id"], b"")
                        ).hexdigest(),
                    }
                    for f in m.get("files", [])
                ],
            }
            for m in messages
        ]
    return shown


async def records(engine: AsyncEngine) -> dict[str, Any]:
    """The rollout's row, its audit log and the incidents with their logs, without the
    database's own ids and Slack's timestamps."""
    async with engine.connect() as connection:
        def rows(sql: str) -> Any:
            return connection.exec_driver_sql(sql)

        rollout = [dict(r._mapping) for r in await rows("SELECT * FROM rollouts")]
        audit = [dict(r._mapping) for r in await rows("SELECT * FROM events ORDER BY id")]
        incidents = [dict(r._mapping) for r in await rows("SELECT * FROM incidents ORDER BY id")]
        logs = [dict(r._mapping) for r in await rows("SELECT * FROM incident_log ORDER BY id")]
    for row in rollout:
        row.pop("thread_ts", None)
    for row in audit:
        row.pop("id", None)
    for incident in incidents:
        for key in [k for k in incident if k.endswith("_ts")]:
            incident.pop(key)
        incident["log"] = [
            {k: v for k, v in entry.items() if k not in ("id",)}
            for entry in logs if entry.get("incident_id") == incident.get("id")
        ]
    assert len(rollout) == 1, rollout
    return {"rollout": rollout[0], "audit": audit, "incidents": incidents}
