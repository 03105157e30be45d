"""The control loop against a real Prometheus scraping a service whose errors the test sets.

Short windows (gate `for: 5s`, interval 1s, scrape 1s, soak 4s) keep the suite quick; the
bot runs on the real system clock. What is asserted is what people see: the rollout's
state at /api/rollouts and the messages in the (stand-in) Slack thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.domain.rollout import HOLD_CHANGE, HOLD_END, HOLD_START
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.fake_service import FakeService
from tests.support.prometheus_server import PrometheusServer

log = logging.getLogger(__name__)

FLAG = "new_checkout"
WINDOW, SCRAPE, INTERVAL = 5.0, 1.0, 1.0
BUDGET = WINDOW + SCRAPE + INTERVAL + 1.0  # breach start to rollback, at most
HOLD_VERBS = (HOLD_START, HOLD_CHANGE, HOLD_END)
QUERY = (
    'sum(rate(http_requests_total{flag="{flag}",code="500"}[3s]))'
    ' / sum(rate(http_requests_total{flag="{flag}"}[3s]))'
)


def config(advance: str = "manual", soak: str = "1h", window: str = "5s") -> str:
    return f"""
channel: "#deployments"
roles:
  leads: [U0CORA]
  operators: [U0FORGE]
gates:
  error_rate:
    query: '{QUERY}'
    fail_above: {{canary: 0.05, progressive: 0.05, final: 0.05}}
    for: {window}
    interval: 1s
    no_data_grace: 1m
plans:
  quick:
    stages:
      - {{percent: 5, soak: {soak}}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: {FLAG}
    plan: quick
    gates: [error_rate]
    advance: {advance}
"""


async def rollout(http: aiohttp.ClientSession, bot: RolloutBot) -> dict[str, Any]:
    async with http.get(f"{bot.url}/api/rollouts/checkout") as response:
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


async def wait_for(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    check: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = await rollout(http, bot)
        if check(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {data}")
        await asyncio.sleep(0.05)


def thread_texts(standin: SlackStandIn) -> list[str]:
    return [str(c.params.get("text", "")) for c in standin.calls_to("chat.postMessage")]


async def start_bot(make_bot: BotFactory, prometheus: PrometheusServer, text: str) -> RolloutBot:
    return await make_bot(text, prometheus_url=prometheus.url)


async def test_canary_advances_only_after_a_green_soak(
    make_bot: BotFactory,
    prometheus: PrometheusServer,
    fake_service: FakeService,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
) -> None:
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    bot = await start_bot(make_bot, prometheus, config(advance="auto", soak="4s"))
    assert "now progressing at 5 %" in await SlackUser(http, bot, "U0CORA").say("start checkout")
    started = time.monotonic()
    await wait_for(http, bot, lambda d: d["gate_states"] != [], timeout=60)
    assert (await rollout(http, bot))["percent"] == 5  # measured green, still soaking
    data = await wait_for(http, bot, lambda d: d["percent"] == 25, timeout=60)
    waited = time.monotonic() - started
    assert waited >= 4.0, f"advanced after {waited:.1f}s, before the 4s soak ended"
    assert data["state"] == "progressing"
    gate = data["gate_states"][0]
    assert (gate["gate"], gate["outcome"]) == ("error_rate", "pass")
    advance = [e for e in data["events"] if e["verb"] == "advance"][-1]
    assert (advance["actor"], advance["source"]) == ("rollout-bot", "automatic")
    await standin.wait_for("chat.postMessage", lambda c: "advanced" in str(c.params.get("text")))
    said = [t for t in thread_texts(standin) if "advanced" in t][-1]
    assert "5 % → 25 %" in said and "soak ended with every gate green" in said


async def test_a_red_blip_during_the_soak_starts_the_soak_again(
    make_bot: BotFactory,
    prometheus: PrometheusServer,
    fake_service: FakeService,
    http: aiohttp.ClientSession,
) -> None:
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    bot = await start_bot(make_bot, prometheus, config(advance="auto", soak="3s", window="15s"))
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await wait_for(http, bot, lambda d: _outcome(d) == "pass", timeout=60)
    fake_service.set(FLAG, rps=50, error_rate=0.3)  # red, but shorter than its 15s window
    await wait_for(http, bot, lambda d: _outcome(d) == "fail", timeout=60)
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    data = await wait_for(http, bot, lambda d: _outcome(d) == "pass", timeout=60)
    green_since = datetime.fromisoformat(data["gate_states"][0]["since"])
    assert (data["state"], data["percent"]) == ("progressing", 5)  # held, not rolled back
    data = await wait_for(http, bot, lambda d: d["percent"] == 25, timeout=60)
    # The first measurement may find no data yet, which holds the rollout for a moment
    # (tests/integration/test_gate_holds.py); the moves are what this test is about.
    start, advance = [e for e in data["events"] if e["verb"] not in HOLD_VERBS]
    assert (start["verb"], advance["verb"]) == ("start", "advance")
    # The first soak had ended by the time the gate was green again: only a soak started
    # afresh when it turned green explains an advance a whole soak after that moment.
    assert datetime.fromisoformat(start["at"]) + timedelta(seconds=3) < green_since
    assert datetime.fromisoformat(advance["at"]) - green_since >= timedelta(seconds=3)


async def test_an_error_rate_breach_rolls_back_within_the_window(
    make_bot: BotFactory,
    prometheus: PrometheusServer,
    fake_service: FakeService,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
) -> None:
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    bot = await start_bot(make_bot, prometheus, config())
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await wait_for(http, bot, lambda d: _outcome(d) == "pass", timeout=60)

    breach = time.monotonic()
    fake_service.set(FLAG, rps=50, error_rate=0.3)
    data = await wait_for(http, bot, lambda d: d["state"] == "rolled_back", timeout=BUDGET + 5)
    took = time.monotonic() - breach
    log.warning("breach to rollback: %.2fs (budget %.1fs)", took, BUDGET)
    print(f"\nbreach-to-rollback: {took:.2f}s (budget {BUDGET:.1f}s)")
    assert took <= BUDGET, f"rolled back {took:.2f}s after the breach (budget {BUDGET}s)"
    assert data["percent"] == 0

    # The first: the incident the rollback opens is posted (and mentions "rolled back") after.
    call = (
        await standin.wait_for(
            "chat.postMessage", lambda c: "rolled back" in str(c.params.get("text"))
        )
    )[0]
    text = str(call.params["text"])
    value = float(text.split("measured ")[1].split(",")[0])
    assert value > 0.05, text
    assert "error_rate" in text and "threshold 0.05" in text and "window of 5s" in text
    assert 'http_requests_total{flag="new_checkout",code="500"}' in text
    assert f"{prometheus.url}/graph?g0.expr=sum%28rate%28http_requests_total" in text
    assert call.params.get("reply_broadcast") in (True, "true", "1", 1)


async def test_a_stopped_prometheus_holds_and_does_not_roll_back(
    make_bot: BotFactory,
    prometheus: PrometheusServer,
    fake_service: FakeService,
    http: aiohttp.ClientSession,
) -> None:
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    bot = await start_bot(make_bot, prometheus, config())
    lead = SlackUser(http, bot, "U0CORA")
    await lead.say("start checkout")
    await wait_for(http, bot, lambda d: _outcome(d) == "pass", timeout=60)

    prometheus.stop()
    await wait_for(http, bot, lambda d: _outcome(d) == "source_down", timeout=60)
    await asyncio.sleep(WINDOW + 2 * INTERVAL)  # longer than a breach would need
    data = await rollout(http, bot)
    assert (data["state"], data["percent"], _outcome(data)) == ("progressing", 5, "source_down")
    assert not [e for e in data["events"] if e["verb"] == "rollback"]
    refusal = await lead.say("advance next checkout")
    assert "cannot advance" in refusal and "error_rate: metrics source down" in refusal


async def test_a_restart_during_a_breach_still_rolls_back_on_time(
    make_bot: BotFactory,
    prometheus: PrometheusServer,
    fake_service: FakeService,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
) -> None:
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    text = config()
    bot = await start_bot(make_bot, prometheus, text)
    await SlackUser(http, bot, "U0CORA").say("start checkout")
    await wait_for(http, bot, lambda d: _outcome(d) == "pass", timeout=60)

    breach = time.monotonic()
    fake_service.set(FLAG, rps=50, error_rate=0.3)
    await wait_for(http, bot, lambda d: _outcome(d) == "fail", timeout=60)
    await bot.stop()
    await asyncio.sleep(2.0)  # down for two evaluation intervals, in the middle of the breach
    bot = await start_bot(make_bot, prometheus, text)
    data = await wait_for(http, bot, lambda d: d["state"] == "rolled_back", timeout=BUDGET + 5)
    took = time.monotonic() - breach
    print(f"\nbreach-to-rollback across a restart: {took:.2f}s (budget {BUDGET:.1f}s)")
    assert took <= BUDGET, f"rolled back {took:.2f}s after the breach (budget {BUDGET}s)"
    assert data["percent"] == 0
    await standin.wait_for("chat.postMessage", lambda c: "rolled back" in str(c.params.get("text")))


def _outcome(data: dict[str, Any]) -> str | None:
    states = data.get("gate_states") or []
    return str(states[0]["outcome"]) if states else None


async def test_a_prometheus_that_never_answers_stalls_no_command(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # read the query, answer nothing, until the client gives up

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    text = config().replace('channel: "#deployments"', 'channel: "#deployments"\n'
                            "prometheus: {timeout: 1s}")
    async with server:
        bot = await make_bot(text, prometheus_url=f"http://127.0.0.1:{port}")
        cora = SlackUser(http, bot, "U0CORA")
        await cora.say("start checkout")
        slowest = 0.0
        for _ in range(20):  # while gate queries hang, one after another
            asked = time.monotonic()
            assert "progressing at 5 %" in await cora.say("status checkout")
            slowest = max(slowest, time.monotonic() - asked)
            await asyncio.sleep(0.1)
        # A query run on the event loop would hold every command for its 1 s timeout.
        assert slowest < 0.9, f"a command waited {slowest:.2f}s behind a hanging Prometheus"
        data = await wait_for(http, bot, lambda d: _outcome(d) == "source_down", timeout=60)
        assert "did not answer within 1s" in data["gate_states"][0]["detail"]
        assert (data["state"], data["percent"]) == ("progressing", 5)  # held, not rolled back
