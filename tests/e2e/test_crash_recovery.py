"""A bot killed with SIGKILL between a command and the delivery of its message delivers it
after restart, once, with the state intact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET
from tests.support.bot_process import BotProcess
from tests.support.slack_requests import post_signed, slash_body

CONFIG = "rollouts:\n  - {name: phase-4, flag: phase_4_deployment}\n"


@pytest.fixture
async def bot_process(tmp_path: Path, standin: SlackStandIn) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path, standin, CONFIG)
    yield process
    await process.stop()


async def test_sigkill_before_delivery_then_restart_delivers_once(
    bot_process: BotProcess, standin: SlackStandIn
) -> None:
    await bot_process.start()
    standin.set_down(True)  # Slack answers 503: the message waits in the outbox
    async with aiohttp.ClientSession() as http:
        status, reply = await post_signed(
            http, f"{bot_process.url}/slack/events", slash_body("start phase-4"), SECRET
        )
        assert status == 200
        assert "phase-4 is now progressing at 5 %" in reply["text"]
        await standin.wait_for("chat.postMessage")  # one delivery attempt failed
        await bot_process.until(  # and its retry is written
            "SELECT attempts FROM outbox WHERE delivered_at IS NULL AND last_error != ''",
            lambda rows: len(rows) >= 1,
        )
        await bot_process.kill()

        standin.set_down(False)
        await bot_process.start()
        delivered = await standin.wait_for(
            "chat.postMessage", lambda c: not c.failed, count=2, timeout=60
        )
        async with http.get(f"{bot_process.url}/api/rollouts/phase-4") as response:
            state = await response.json()
    # Every queued message is marked delivered: nothing is left that could be sent again.
    await bot_process.until(
        "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        lambda rows: rows == [(0,)],
    )
    texts = [c.params["text"] for c in standin.calls_to("chat.postMessage") if not c.failed]
    assert texts == [
        "phase-4: progressing at 5 %",
        "<@U0CORA> started phase-4 0 % → 5 %\nSoak at this stage: 1d.",
    ]
    assert delivered[1].params["thread_ts"] == delivered[0].response["ts"]
    assert (state["state"], state["percent"], state["version"]) == ("progressing", 5, 1)
    assert [e["verb"] for e in state["events"]] == ["start"]


async def test_a_second_bot_on_the_same_sqlite_file_is_refused(
    tmp_path: Path, bot_process: BotProcess, standin: SlackStandIn
) -> None:
    """Two bots on one SQLite file would each take the other's claims for a dead bot's:
    the second is refused at once, says why and what to do, and the first serves on."""
    await bot_process.start()
    second = BotProcess(tmp_path, standin, CONFIG, replica_id="second")
    with pytest.raises(AssertionError, match="did not come up"):
        await second.start(within=60)
    assert second.process is not None and second.process.returncode == 1
    said = second.log_path.read_text()
    assert "is in use by another rollout-bot" in said and "PostgreSQL" in said, said
    assert (await bot_process.health())["ok"] is True
