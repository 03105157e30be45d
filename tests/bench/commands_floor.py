"""What P1 and P1b share: the bot and the bare signed endpoint as processes of their own,
the command mixes sent to them, and the table of ratios."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.bench.wrk_load import Load
from tests.support.bot_process import free_port
from tests.support.slack_requests import post_signed, slash_body

ONE = ["phase-4"]  # the answers to time: one rollout, as in Slack most days
ROLLOUTS = [f"r{n:02d}" for n in range(30)]  # 30 rollouts: pause/resume, and a long status


def rollouts_config(names: list[str] = ROLLOUTS, extra: str = "") -> str:
    listed = "\n".join(f"  - {{name: {n}, flag: flag_{n}}}" for n in names)
    return f"{extra}rollouts:\n{listed}\n"


def same(text: str, count: int = 2000) -> list[str]:
    """`count` signed-to-be bodies of one command, each with its own trigger_id."""
    return [slash_body(text) for _ in range(count)]


def pause_resume(names: list[str] = ROLLOUTS, rounds: int = 300) -> list[str]:
    """pause r00 … pause r29, resume r00 … resume r29, again and again: the same rollout
    is never twice among 20 requests in flight, so each one changes state."""
    bodies: list[str] = []
    for _ in range(rounds):
        bodies += [slash_body(f"pause {n} -- bench") for n in names]
        bodies += [slash_body(f"resume {n}") for n in names]
    return bodies


@asynccontextmanager
async def bare_endpoint(secret: str) -> AsyncIterator[str]:
    """The floor: a process that verifies the signature and answers a constant."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.bare_endpoint", str(port), secret,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(1200):
                try:
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the bare endpoint did not come up within 60 s")
        yield url
    finally:
        process.terminate()
        await process.wait()


async def start_all(url: str, secret: str, names: list[str] = ROLLOUTS) -> None:
    async with aiohttp.ClientSession() as http:
        for name in names:
            status, reply = await post_signed(http, f"{url}/slack/events",
                                              slash_body(f"start {name}"), secret)
            assert status == 200 and reply["text"].startswith("Done:"), reply


async def answers(url: str, secret: str, texts: list[str]) -> dict[str, str]:
    """One signed request of each text, and what the person who typed it is shown."""
    seen = {}
    async with aiohttp.ClientSession() as http:
        for text in texts:
            status, reply = await post_signed(http, f"{url}/slack/events", slash_body(text),
                                              secret)
            assert status == 200, reply
            seen[text] = reply["text"]
    return seen


def check_clean(load: Load) -> None:
    assert load.non_2xx == 0 and load.socket_errors == 0, load
    assert load.requests > 0


def ratio_rows(floor: Load, runs: Iterator[tuple[str, Load]]) -> list[str]:
    rows = [
        "| what | p50 ms | p99 ms | requests/s | p50 ÷ floor | p99 ÷ floor | throughput ÷ floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| bare signed endpoint (the floor) | {floor.p50_ms:.1f} | {floor.p99_ms:.1f} | "
        f"{floor.per_second:,.0f} | 1 | 1 | 1 |",
    ]
    for name, load in runs:
        rows.append(
            f"| `{name}` | {load.p50_ms:.1f} | {load.p99_ms:.1f} | {load.per_second:,.0f} | "
            f"{load.p50_ms / floor.p50_ms:.2f}× | {load.p99_ms / floor.p99_ms:.2f}× | "
            f"{load.per_second / floor.per_second:.2f}× |"
        )
    return rows


def floor_of(first: Load, last: Load) -> Load:
    """The floor measured before and after the commands: their mean, so a machine that got
    busier or quieter during the run moves both sides alike."""
    seconds = first.seconds + last.seconds
    return Load(
        requests=first.requests + last.requests,
        seconds=seconds,
        p50_ms=(first.p50_ms + last.p50_ms) / 2,
        p99_ms=(first.p99_ms + last.p99_ms) / 2,
        max_ms=max(first.max_ms, last.max_ms),
        non_2xx=first.non_2xx + last.non_2xx,
        socket_errors=first.socket_errors + last.socket_errors,
    )


def load_json(load: Load) -> dict[str, float]:
    return {
        "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "per_second": load.per_second,
        "requests": load.requests,
    }


def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "wrk"
