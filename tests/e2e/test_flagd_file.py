"""A service that evaluates its flags through OpenFeature with the flagd provider (file mode)
follows the rollout from the file the bot writes: the share of `on` matches the percentage,
a key once on stays on as the percentage grows, a stage flag is on for exactly the rollout's
keys, and a rollback turns every key off within a second."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from tests.conftest import BotFactory, SlackUser

KEYS = [f"user-{i}" for i in range(10_000)]
FLAG = "new_checkout"


def config(flagd_file: Path) -> str:
    return f"""
channel: "#deployments"
roles: {{leads: [U0CORA], operators: [U0FORGE]}}
flagd_file: {flagd_file}
plans:
  quick:
    stages:
      - {{percent: 5, soak: 1h, flags: [otel_enabled]}}
      - {{percent: 10, soak: 1h}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 50, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: {FLAG}
    plan: quick
"""


class FlagdService:
    """A service's OpenFeature client on the flagd provider in file mode, reading the file
    at the provider's default poll (every 500 ms), as a service would be set up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.domain = f"rollout-bot-test-{id(self)}"
        self.provider: FlagdProvider | None = None

    def connect(self) -> OpenFeatureClient:
        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=str(self.path)
        )
        api.set_provider(self.provider, domain=self.domain)
        return api.get_client(domain=self.domain)


@pytest.fixture
def flagd(tmp_path: Path) -> Iterator[FlagdService]:
    service = FlagdService(tmp_path / "flags" / "flagd.json")
    yield service
    if service.provider is not None:
        service.provider.shutdown()


def on_keys(client: OpenFeatureClient, flag: str) -> set[str]:
    return {
        key
        for key in KEYS
        if client.get_boolean_value(flag, False, EvaluationContext(targeting_key=key))
    }


def percent_seen(client: OpenFeatureClient, flag: str) -> object:
    """The percentage the provider has loaded, read back from the flag's metadata."""
    details = client.get_boolean_details(flag, False, EvaluationContext(targeting_key="probe"))
    return details.flag_metadata.get("rollout_percentage")


async def until(probe: Callable[[], bool], give_up: float = 10.0) -> None:
    """Wait until `probe()` (run in a thread: evaluation is synchronous) holds."""
    start = time.monotonic()
    while not await asyncio.to_thread(probe):
        assert time.monotonic() - start < give_up, f"not seen within {give_up}s"
        await asyncio.sleep(0.02)


async def test_openfeature_with_flagd_follows_the_rollout(
    make_bot: BotFactory, http: aiohttp.ClientSession, flagd: FlagdService
) -> None:
    path = flagd.path
    bot = await make_bot(config(path))
    assert json.loads(path.read_text())["flags"][FLAG]["defaultVariant"] == "off"
    client = flagd.connect()
    assert not await asyncio.to_thread(on_keys, client, FLAG)  # pending: nobody is on

    lead = SlackUser(http, bot, "U0CORA")
    await lead.say("start checkout")
    shares: dict[int, set[str]] = {}
    for percent in (5, 10, 25, 50):
        if percent != 5:
            await lead.say(f"advance {percent} checkout force checked by hand")
        await until(lambda p=percent: percent_seen(client, FLAG) == p)
        keys = await asyncio.to_thread(on_keys, client, FLAG)
        shares[percent] = keys
        share = len(keys) / len(KEYS) * 100
        print(f"{percent} %: {share:.2f} % of {len(KEYS)} keys on")
        assert abs(share - percent) <= 2, f"{share:.2f} % on at {percent} %"
        if percent == 5:
            # a stage flag is a boolean flag on for exactly the rollout's keys
            assert await asyncio.to_thread(on_keys, client, "otel_enabled") == keys
    assert shares[10] <= shares[25], "a key on at 10 % is off at 25 %"
    assert shares[5] <= shares[10] and shares[25] <= shares[50]

    operator = SlackUser(http, bot, "U0FORGE")
    one_on = sorted(shares[50])[0]
    started = time.monotonic()
    await operator.say("rollback checkout -- the flagd test rolls back")
    await until(
        lambda: not client.get_boolean_value(FLAG, False, EvaluationContext(targeting_key=one_on))
    )
    took = time.monotonic() - started
    print(f"rollback: the provider turned keys off {took * 1000:.0f} ms after the command")
    assert took < 1.0, f"keys still on {took:.2f}s after the rollback"
    assert not await asyncio.to_thread(on_keys, client, FLAG), "a key is on after the rollback"
    assert not await asyncio.to_thread(on_keys, client, "otel_enabled")
    assert not list(path.parent.glob("*.tmp"))
