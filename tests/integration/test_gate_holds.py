"""A stopped Prometheus holds the rollout, and everyone sees it within one gate tick.

Against a real Prometheus scraping a service, with the bot on the system clock and short
durations (interval 1s, grace 6s): the parent message, `/rollout status` and the API say
which gate holds the rollout and since when as soon as it is measured unknown, the thread
gets one line when the hold starts and one when it ends, and on-call is paged only once
the gate has been unknown for its grace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.demo.terminal import render
from bot.standin.web_api import Call, SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.integration.test_control_loop import FLAG, QUERY, rollout, wait_for
from tests.support.fake_service import FakeService
from tests.support.incidents import dms
from tests.support.prometheus_server import PrometheusServer

GRACE = timedelta(seconds=6)
CONFIG = f"""
channel: "#deployments"
roles:
  leads: [U0CORA]
  operators: [U0FORGE]
oncall:
  chain:
    - {{user: U0FORGE, wait: 5m}}
gates:
  error_rate:
    query: '{QUERY}'
    fail_above: {{canary: 0.05, progressive: 0.05, final: 0.05}}
    for: 5s
    interval: 1s
    no_data_grace: 6s
plans:
  quick:
    stages:
      - {{percent: 5, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: {FLAG}
    plan: quick
    gates: [error_rate]
"""
HELD = "Held: error_rate — Prometheus unreachable since "
STARTS = "⏸️ checkout is held at 5 %: error_rate — Prometheus unreachable since "
ENDS = "▶️ checkout is no longer held: error_rate is measured again."


def parents(standin: SlackStandIn) -> list[str]:
    """The parent message as each chat.update left it, oldest first."""
    return [
        render(c.params)
        for c in standin.calls_to("chat.update")
        if not c.failed and str(c.params.get("text", "")).startswith("checkout:")
    ]


def thread(standin: SlackStandIn) -> list[str]:
    return [
        str(c.params.get("text", ""))
        for c in standin.calls_to("chat.postMessage")
        if not c.failed and c.params.get("thread_ts")
    ]


def lines(standin: SlackStandIn, start: str, after: int = 0) -> list[str]:
    return [t for t in thread(standin)[after:] if t.startswith(start)]


def wall_time(call: Call) -> datetime:
    """When the stand-in received a call, on the clock the bot reads (the system's)."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - call.received_at)


async def eventually(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not so within {timeout}s"
        await asyncio.sleep(0.05)


def _outcome(data: dict[str, Any]) -> str | None:
    states = data.get("gate_states") or []
    return str(states[0]["outcome"]) if states else None


def held_by(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(data["held_by"])


async def test_a_stopped_prometheus_is_shown_as_a_hold_at_once_and_paged_after_the_grace(
    make_bot: BotFactory,
    prometheus: PrometheusServer,
    fake_service: FakeService,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
) -> None:
    fake_service.set(FLAG, rps=50, error_rate=0.0)
    bot = await make_bot(CONFIG, prometheus_url=prometheus.url)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start checkout")
    green = await wait_for(http, bot, lambda d: _outcome(d) == "pass" and not d["held_by"], 10)
    # (The very first measurement may have found no data yet: a hold of its own, ended.)
    starts_before = [e["verb"] for e in green["events"]].count("hold_start")
    await standin.wait_for("chat.postMessage", lambda c: str(c.params.get("text", "")).startswith(
        ENDS
    ), count=starts_before, timeout=5)
    before = len(thread(standin))

    prometheus.stop()
    data = await wait_for(http, bot, lambda d: [h["outcome"] for h in d["held_by"]] == [
        "source_down"
    ], timeout=60)
    (hold,) = held_by(data)
    since = datetime.fromisoformat(hold["since"])
    assert hold["gate"] == "error_rate"
    # Decided in the very tick that found Prometheus unreachable.
    (started,) = [e for e in data["events"] if e["verb"] == "hold_start"][starts_before:]
    assert datetime.fromisoformat(started["at"]) == since
    assert (data["state"], data["percent"]) == ("progressing", 5)

    await standin.wait_for(
        "chat.update", lambda c: HELD in render(c.params) and "checkout" in render(c.params),
        timeout=60,
    )
    assert HELD in parents(standin)[-1]
    assert f"{HELD}{since:%Y-%m-%d %H:%M} UTC" in parents(standin)[-1]  # the date's fallback
    status = await cora.say("status checkout")
    assert "progressing at 5 %" in status
    assert f"{HELD}<!date^{int(since.timestamp())}^" in status
    await standin.wait_for("chat.postMessage", lambda c: str(c.params.get("text", "")).startswith(
        STARTS
    ), timeout=10)
    (start_line,) = lines(standin, STARTS, before)
    assert start_line.endswith(
        "It will not advance until the gate is measured again; on-call is paged if this "
        "lasts 6s."
    )
    assert dms(standin) == []  # not yet paged: the grace has not passed

    # After the grace, on-call is paged, once, and the rollout is still held.
    page = (
        await standin.wait_for(
            "chat.postMessage", lambda c: str(c.params.get("channel", "")) == "U0FORGE",
            timeout=GRACE.total_seconds() + 10,
        )
    )[0]
    assert wall_time(page) - since >= GRACE
    assert "checkout is held at 5 %: gate error_rate metrics source down" in str(page.params)
    data = await rollout(http, bot)
    assert [h["gate"] for h in held_by(data)] == ["error_rate"]
    assert [e["verb"] for e in data["events"]].count("hold") == 1
    assert lines(standin, STARTS, before) == [start_line]  # the page did not say the hold again

    # Prometheus answers again: one line that the hold ended, and the parent says no more.
    await prometheus.start(same_port=True)
    await standin.wait_for(
        "chat.postMessage", lambda c: str(c.params.get("text", "")).startswith(ENDS),
        count=starts_before + 1, timeout=20,
    )
    data = await wait_for(http, bot, lambda d: _outcome(d) == "pass" and not d["held_by"], 5)
    (end_line,) = lines(standin, ENDS, before)
    assert end_line == f"{ENDS} The soak counts green time from now."
    await eventually(lambda: HELD not in parents(standin)[-1], timeout=60)
    assert "Held" not in await cora.say("status checkout")
    # One line each way, however many ticks it lasted (with, perhaps, one saying that
    # Prometheus was back before it had data again); never a line per tick.
    assert len(lines(standin, STARTS, before)) == 1
    assert len(lines(standin, "⏸️ checkout is still held", before)) <= 1
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE"]
    assert (data["state"], data["percent"]) == ("progressing", 5)
