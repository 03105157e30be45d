"""Several `rollout-bot serve` processes on one PostgreSQL database, one stepped clock and
one Slack stand-in, with a real Prometheus (behind a `FaultProxy`) as the gates' source.

    async with Replicas.running(tmp_path, standin, config, count=3) as cluster:
        await cluster.say("U0CORA", "start checkout")   # signed, to the next replica in turn
        await cluster.step(timedelta(seconds=30))       # every replica sees the new time
        await cluster.settled()                         # no timer due, no message pending
        victim, takeover = await cluster.kill_mid_tick()

The test drives time: `write_clock_file`, read by every replica's `--clock-file`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import RUNS_AFTER
from bot.clock import write_clock_file
from bot.standin.web_api import SlackStandIn
from storage.db import create_engine, sessionmaker
from storage.models import TimerRow
from tests.conftest import SECRET, fresh_postgres
from tests.support.bot_process import BotProcess
from tests.support.fake_service import FakeService
from tests.support.fault_proxy import FaultProxy
from tests.support.incidents import still_to_do
from tests.support.prometheus_server import PrometheusServer
from tests.support.slack_requests import post_signed, slash_body

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
WAIT = 60.0  # the longest any condition is waited for
GATE_QUERY = "/api/v1/query"  # what a gate tick asks Prometheus (instant queries)

FLAG = "checkout_v3"
GATE_TIMER = "gates"  # the one timer of the gate tick, for every rollout
ERROR_RATIO = (
    'sum(rate(http_requests_total{flag="{flag}",code="500"}[5s]))'
    ' / sum(rate(http_requests_total{flag="{flag}"}[5s]))'
)


def replica_config(prometheus_url: str) -> str:
    """One rollout, one gate every 30 s, checkpoints every minute, a two-step chain."""
    return f"""
channel: "#deployments"
timezone: UTC
prometheus: {{url: "{prometheus_url}", timeout: 30s}}
roles: {{leads: [U0CORA], operators: [U0FORGE, U0HUDSON]}}
oncall:
  chain:
    - {{user: U0FORGE, wait: 2m}}
    - {{user: U0HUDSON, wait: 2m}}
checkpoints:
  - {{every: 1m}}
gates:
  error_rate:
    query: '{ERROR_RATIO}'
    fail_above: 0.05
    for: 1m
    interval: 30s
    no_data_grace: 10m
plans:
  quick:
    stages:
      - {{percent: 5, soak: 2m}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - {{name: checkout, flag: {FLAG}, plan: quick, gates: [error_rate], advance: manual}}
"""


@dataclass
class Metrics:
    """The service being rolled out, the real Prometheus scraping it, and the proxy in
    front of Prometheus that the bots are pointed at (it sees every query)."""

    service: FakeService
    prometheus: PrometheusServer
    proxy: FaultProxy


@contextlib.asynccontextmanager
async def service_metrics(flag: str) -> AsyncIterator[Metrics]:
    """A FakeService serving `flag` without errors, scraped by a real Prometheus."""
    service = FakeService()
    await service.start()
    service.set(flag, rps=50, error_rate=0.0, latency_s=0.05)
    prometheus = PrometheusServer([service.target])
    try:
        await prometheus.start()
        proxy = FaultProxy(prometheus.url)
        await proxy.start()
        try:
            yield Metrics(service, prometheus, proxy)
        finally:
            await proxy.stop()
    finally:
        prometheus.close()
        await service.stop()


@dataclass(frozen=True)
class Kill:
    victim: BotProcess
    killed_at: datetime  # on the stepped clock
    started: float  # the event loop's (monotonic) time of the kill
    queries_before: list[float]  # arrival times of the gate queries before it


@dataclass(frozen=True)
class Takeover:
    """A replica killed in the middle of a gate tick, and how the others took it over."""

    victim: str
    killed_at: datetime  # on the stepped clock
    clock_at_next_query: datetime  # the stepped clock when the next gate query arrived
    seconds: float  # real seconds from the kill to that query


class Replicas:
    def __init__(
        self,
        tmp_path: Path,
        standin: SlackStandIn,
        config_text: str,
        database_url: str,
        proxy: FaultProxy,
        count: int,
    ) -> None:
        self.standin = standin
        self.proxy = proxy
        self.database_url = database_url
        self.clock_file = tmp_path / "clock"
        self.now = T0
        write_clock_file(self.clock_file, self.now)
        self.bots = [
            BotProcess(
                tmp_path,
                standin,
                config_text,
                database_url=database_url,
                clock_file=self.clock_file,
                replica_id=f"replica-{n}",
            )
            for n in range(count)
        ]
        self._turn = itertools.count()
        self.engine: AsyncEngine = create_engine(database_url)
        self.sessions = sessionmaker(self.engine)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT))

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        tmp_path: Path,
        standin: SlackStandIn,
        config_text: str,
        proxy: FaultProxy,
        count: int = 3,
    ) -> AsyncIterator[Replicas]:
        """`count` replicas on a fresh PostgreSQL database, dropped afterwards."""
        async with fresh_postgres() as url:
            cluster = cls(tmp_path, standin, config_text, url, proxy, count)
            try:
                # The first migrates; the others start together once the schema is there.
                await cluster.bots[0].start(within=WAIT)
                await asyncio.gather(*(bot.start(within=WAIT) for bot in cluster.bots[1:]))
                yield cluster
            finally:
                await cluster.close()

    @property
    def live(self) -> list[BotProcess]:
        return [bot for bot in self.bots if bot.running]

    async def close(self) -> None:
        await asyncio.gather(*(bot.stop() for bot in self.live), return_exceptions=True)
        await self.http.close()
        await self.engine.dispose()

    def replica_of(self, bot: BotProcess) -> str:
        return bot.env["REPLICA_ID"]

    # --- Slack, as a load balancer spreads it ---------------------------------------

    def next_replica(self) -> BotProcess:
        live = self.live
        return live[next(self._turn) % len(live)]

    async def say(self, user: str, text: str, bot: BotProcess | None = None) -> str:
        """A signed `/rollout TEXT` from `user`, to the next live replica in turn; the
        ephemeral reply's text."""
        target = bot or self.next_replica()
        status, reply = await post_signed(
            self.http, f"{target.url}/slack/events", slash_body(text, user_id=user), SECRET
        )
        assert status == 200, (status, reply)
        return str(reply["text"])

    # --- time -------------------------------------------------------------------------

    async def step(self, delta: timedelta) -> None:
        self.now += delta
        write_clock_file(self.clock_file, self.now)

    async def settled(self, within: float = WAIT, held: str | None = None) -> None:
        """Until nothing is due: no timer at or before now, no message waiting to go. With
        `held`, a timer of that kind is in flight, held at the proxy, and the kinds that
        run after it (`RUNS_AFTER`) wait for it: timers of those kinds may be due too."""
        deadline = asyncio.get_running_loop().time() + within
        waiting = {kind for kind, before in RUNS_AFTER.items() if held in before}
        while True:
            pending, due = await still_to_do(self.sessions, self.now)
            if held is not None:
                due -= await self._due_of({held, *waiting})
            if due <= 0 and not pending:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not settled within {within:g}s: {due} timers due, "
                                     f"{pending} messages pending at {self.now:%H:%M:%S}")
            await asyncio.sleep(0.05)

    async def _due_of(self, kinds: set[str]) -> int:
        async with self.sessions() as session:
            found = await session.scalar(
                select(func.count()).where(TimerRow.due_at <= self.now, TimerRow.kind.in_(kinds))
            )
        return int(found or 0)

    async def tick(self, delta: timedelta = timedelta(seconds=30)) -> None:
        await self.step(delta)
        await self.settled()

    # --- what the replicas hold, and killing one in the middle of a tick -------------

    async def holdings(self) -> dict[str, dict[str, Any]]:
        """Each live replica's `/healthz` replica section, by its REPLICA_ID."""
        answers = await asyncio.gather(*(bot.health() for bot in self.live))
        return {answer["replica"]["id"]: answer["replica"] for answer in answers}

    async def kill_mid_tick(
        self, gate_timer: str, delta: timedelta = timedelta(seconds=30)
    ) -> tuple[BotProcess, Takeover]:
        """Step the clock to the next gate tick, hold its Prometheus query so the replica
        that claimed it is stuck in the middle of it, SIGKILL that replica (holding the
        tick, it is the busiest at that instant), and wait for the next gate query, from
        whichever replica takes the tick over. The clock is not moved meanwhile."""
        kill = await self.kill_holder(gate_timer, delta)
        return kill.victim, await self.next_gate_query(kill)

    async def kill_holder(self, gate_timer: str, delta: timedelta) -> Kill:
        """`kill_mid_tick` without waiting for what follows."""
        self.proxy.hold_next(GATE_QUERY)
        await self.step(delta)
        await asyncio.wait_for(self.proxy.wait_held(), WAIT)
        victim = await self._holder(gate_timer)
        # Only the held tick is left in flight: no delivery is cut off between Slack
        # accepting a message and the outbox recording it (the one way a message can go
        # twice, whichever replica sends it).
        await self.settled(held=gate_timer)
        held = {
            name: len(replica["timers"]) + len(replica["outbox"])
            for name, replica in (await self.holdings()).items()
        }
        assert held[self.replica_of(victim)] == max(held.values()), held  # the busiest
        kill = Kill(victim, self.now, asyncio.get_running_loop().time(), self._gate_queries())
        await victim.kill()
        self.proxy.release()  # the held query's sender is gone; its answer goes nowhere
        return kill

    async def next_gate_query(self, kill: Kill) -> Takeover:
        """Until the first gate query after `kill`; how long after it that came."""
        loop = asyncio.get_running_loop()
        while len(self._gate_queries()) <= len(kill.queries_before):
            if loop.time() > kill.started + WAIT:
                raise AssertionError(f"nobody measured the gates within {WAIT:g}s of the kill")
            await asyncio.sleep(0.01)
        arrived = self._gate_queries()[len(kill.queries_before)]
        return Takeover(
            self.replica_of(kill.victim), kill.killed_at, self.now, max(0.0, arrived - kill.started)
        )

    async def _holder(self, timer: str) -> BotProcess:
        deadline = asyncio.get_running_loop().time() + WAIT
        while asyncio.get_running_loop().time() < deadline:
            for bot in self.live:
                if timer in (await bot.health())["replica"]["timers"]:
                    return bot
            await asyncio.sleep(0.02)
        raise AssertionError(f"no replica holds {timer}")

    def _gate_queries(self) -> list[float]:
        return [at for at, path in self.proxy.arrivals if path == GATE_QUERY]
