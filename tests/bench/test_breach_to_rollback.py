"""How long a breach takes to become a rollback, and a decision to reach the service
(`make bench`), against a real Prometheus (the Debian package) on real time.

The bot runs as its own process (`rollout-bot serve`, SQLite) with a flags file and a flagd
file. A real Prometheus scrapes the service being rolled out (`FakeService`) every second.
Each run: the service is healthy, a lead starts the rollout (5 %) and advances it to 25 %
(the decision); then the service starts failing 30 % of its requests (the breach). Timed:

* breach: from the moment the gate's query first answers red in Prometheus (polled every
  50 ms with the gate's own query) to the rollback decision (the audit event's time) and
  to the rollback message arriving at the Slack stand-in;
* decision: from the advance's and the rollback's audit event to `/flags/FLAG/evaluate`,
  the flags file and the flagd file each serving the new percentage (polled every 10 ms).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.standin.web_api import SlackStandIn
from tests.bench.fragments import write_fragment
from tests.conftest import SECRET
from tests.support.bot_process import BotProcess
from tests.support.fake_service import FakeService
from tests.support.prometheus_server import PrometheusServer
from tests.support.slack_requests import post_signed, slash_body

RUNS = 20
FLAG = "checkout_v2"
THRESHOLD = 0.05
SCRAPE, INTERVAL, WINDOW, RATE = 1, 1, 3, 3  # seconds: scrape, gate interval, for:, rate()
QUERY = (
    f'sum(rate(http_requests_total{{flag="{{flag}}",code="500"}}[{RATE}s]))'
    f' / sum(rate(http_requests_total{{flag="{{flag}}"}}[{RATE}s]))'
)
TIMEOUT = 60.0


def config(prometheus: str, directory: Path) -> str:
    return f"""
channel: "#deployments"
roles:
  leads: [U0CORA]
prometheus: {{url: {prometheus}}}
flags_file: {directory / "flags.json"}
flagd_file: {directory / "flagd.json"}
gates:
  error_rate:
    query: '{QUERY}'
    fail_above: {THRESHOLD}
    for: {WINDOW}s
    interval: {INTERVAL}s
    no_data_grace: 1m
plans:
  quick:
    stages:
      - {{percent: 5, soak: 1s}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - {{name: checkout, flag: {FLAG}, plan: quick, gates: [error_rate]}}
"""


async def until(check: Callable[[], Awaitable[Any]], what: str, every: float = 0.05) -> Any:
    """The first true answer of `check`, polled every `every` s for up to TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT:g} s: {what}")
        await asyncio.sleep(every)


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = statistics.quantiles(ordered, n=20, method="inclusive")[18]
    return f"{statistics.median(ordered):.2f} | {p95:.2f} | {ordered[-1]:.2f}"


class Bench:
    def __init__(self, http: aiohttp.ClientSession, bot: BotProcess, directory: Path) -> None:
        self.http = http
        self.bot = bot
        self.directory = directory

    async def say(self, text: str) -> str:
        body = slash_body(text, user_id="U0CORA")
        status, reply = await post_signed(self.http, f"{self.bot.url}/slack/events", body, SECRET)
        assert status == 200 and reply["response_type"] == "ephemeral", (status, reply)
        return str(reply["text"])

    async def rollout(self) -> dict[str, Any]:
        async with self.http.get(f"{self.bot.url}/api/rollouts/checkout") as response:
            assert response.status == 200
            data: dict[str, Any] = await response.json()
            return data

    async def gate_green(self) -> bool:
        gates = (await self.rollout())["gate_states"]
        return bool(gates) and gates[0]["outcome"] == "pass"

    async def last_event(self, verb: str) -> float:
        events = [e for e in (await self.rollout())["events"] if e["verb"] == verb]
        return datetime.fromisoformat(events[-1]["at"]).timestamp()

    # Where the service reads its percentage; each answers the percentage it serves now.
    async def evaluate(self) -> int:
        url = f"{self.bot.url}/flags/{FLAG}/evaluate"
        async with self.http.get(url, params={"key": "user-42"}) as response:
            return int((await response.json())["rollout_percentage"])

    def flags_file(self) -> int | None:
        try:
            data = json.loads((self.directory / "flags.json").read_text())
        except (OSError, ValueError):
            return None
        return int(data["flags"][FLAG]["rollout_percentage"])

    def flagd_file(self) -> int | None:
        try:
            data = json.loads((self.directory / "flagd.json").read_text())
        except (OSError, ValueError):
            return None
        return int(data["flags"][FLAG]["metadata"]["rollout_percentage"])

    async def served(self, percent: int) -> dict[str, float]:
        """When (wall clock) each surface first served `percent`."""

        async def watch(read: Callable[[], Awaitable[int | None]]) -> float:
            async def serves() -> float | None:
                return time.time() if await read() == percent else None

            found: float = await until(serves, f"{percent} % served", every=0.01)
            return found

        async def of_file(read: Callable[[], int | None]) -> int | None:
            return read()

        names = ("/flags/FLAG/evaluate", "flags file", "flagd file")
        readers = (
            self.evaluate,
            lambda: of_file(self.flags_file),
            lambda: of_file(self.flagd_file),
        )
        times = await asyncio.gather(*(watch(r) for r in readers))
        return dict(zip(names, times, strict=True))


async def red_in_prometheus(prometheus: PrometheusServer) -> float:
    """When (wall clock) the gate's own query first answers above its threshold."""
    query = QUERY.replace("{flag}", FLAG)

    async def red() -> float | None:
        value = await prometheus.query_value(query)
        return time.time() if value is not None and value > THRESHOLD else None

    found: float = await until(red, "the gate red in Prometheus")
    return found


@pytest.mark.bench
async def test_breach_to_rollback_and_decision_to_flags(
    tmp_path: Path, standin: SlackStandIn
) -> None:
    service = FakeService()
    await service.start()
    service.set(FLAG, rps=50, error_rate=0.0)
    prometheus = PrometheusServer(
        [service.target], scrape_interval=f"{SCRAPE}s", evaluation_interval=f"{SCRAPE}s"
    )
    await prometheus.start()
    bot = BotProcess(tmp_path, standin, config(prometheus.url, tmp_path))
    await bot.start()
    offset = time.time() - time.monotonic()  # the stand-in stamps calls on the monotonic clock
    query = QUERY.replace("{flag}", FLAG)
    to_decision, to_message, to_red = [], [], []
    advance_served: dict[str, list[float]] = {}
    rollback_served: dict[str, list[float]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            bench = Bench(http, bot, tmp_path)
            for run in range(RUNS):
                service.set(FLAG, rps=50, error_rate=0.0)

                async def healthy() -> bool:
                    value = await prometheus.query_value(query)
                    return value is not None and value <= THRESHOLD

                await until(healthy, "the gate green in Prometheus again")
                said = await bench.say("start checkout")
                assert "now progressing at 5 %" in said, said
                await until(bench.gate_green, "the gate measured green after the start")

                # The decision: advance to 25 % once the 1 s soak has ended.
                watching = asyncio.create_task(bench.served(25))

                async def advanced() -> bool:
                    await bench.say("advance next checkout")  # refused while it soaks
                    return bool((await bench.rollout())["percent"] == 25)

                await until(advanced, "the advance to 25 % taken", every=0.2)
                served = await watching
                decided = await bench.last_event("advance")
                for surface, at in served.items():
                    advance_served.setdefault(surface, []).append(at - decided)
                await until(bench.gate_green, "the gate green at 25 %")

                # The breach.
                standin.clear()
                breached = time.time()
                service.set(FLAG, rps=50, error_rate=0.3)
                watching = asyncio.create_task(bench.served(0))
                red = await red_in_prometheus(prometheus)

                async def rolled_back() -> dict[str, Any] | None:
                    data = await bench.rollout()
                    return data if data["state"] == "rolled_back" else None

                data = await until(rolled_back, "the rollback")
                assert data["percent"] == 0
                decided = await bench.last_event("rollback")
                (message, *_) = await standin.wait_for(
                    "chat.postMessage",
                    lambda c: "rolled back" in str(c.params.get("text")),
                    timeout=TIMEOUT,
                )
                text = str(message.params["text"])
                assert "error_rate" in text and f"threshold {THRESHOLD:g}" in text, text
                served = await watching
                for surface, at in served.items():
                    rollback_served.setdefault(surface, []).append(at - decided)
                # The gate's `for:` window is honoured: no rollback before it has passed.
                assert decided - breached >= WINDOW, (run, decided - breached)
                to_red.append(red - breached)
                to_decision.append(decided - red)
                to_message.append(message.received_at + offset - red)
    finally:
        await bot.stop()
        prometheus.close()
        await service.stop()

    assert len(to_decision) == RUNS
    print(
        f"\nP2 over {RUNS} runs (p50 | p95 | max, s): red → rollback decision "
        f"{summary(to_decision)}; red → message at Slack {summary(to_message)}; "
        + "; ".join(f"advance → {k} {summary(v)}" for k, v in advance_served.items())
    )
    rows = [
        f"| the failing service → the gate red in Prometheus | {summary(to_red)} |",
        f"| red in Prometheus → rollback decision recorded | {summary(to_decision)} |",
        f"| red in Prometheus → rollback message at Slack | {summary(to_message)} |",
    ]
    rows += [
        f"| advance decision → {k} at 25 % | {summary(v)} |" for k, v in advance_served.items()
    ]
    rows += [
        f"| rollback decision → {k} at 0 % | {summary(v)} |" for k, v in rollback_served.items()
    ]
    table = "\n".join(rows)
    bound = WINDOW + 2 * INTERVAL
    write_fragment(
        "P2",
        f"""
The bot as its own process (`rollout-bot serve`, SQLite, a flags file and a flagd file)
against a real Prometheus scraping the service every {SCRAPE} s, on real time. The gate:
the service's error ratio over `rate(...[{RATE}s])`, red above {THRESHOLD:g}, measured every
{INTERVAL} s (`interval: {INTERVAL}s`) with `for: {WINDOW}s`. {RUNS} runs: a lead starts
the rollout and advances it to 25 %, then the service fails 30 % of its requests. "Red in
Prometheus" is the first answer above the threshold to the gate's own query, polled every
50 ms; a decision's time is its audit event's; the surfaces are polled every 10 ms.

| seconds | p50 | p95 | max |
| --- | --- | --- | --- |
{table}

What bounds it: a breach is seen at the next measurement (within one `interval`, plus
the query), a rollback needs the gate red for the whole `for:` window from that
measurement, and lands at the first tick after it: `for:` + up to two intervals, here
about {bound} s. The message then waits for the outbox (kicked on every commit).
`/flags` reads the database, so it serves a decision once its transaction has committed;
the files follow at their next write (kicked on every commit, else every 0.5 s). With a
production gate (30 s interval, `for: 5m`) the same bound reads up to 6 min.

Command: `.venv/bin/pytest -q -m bench tests/bench/test_breach_to_rollback.py -s`
""",
    )
