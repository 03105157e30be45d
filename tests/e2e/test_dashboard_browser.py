"""A real browser on the dashboard: while a rollout advances through signed `/rollout`
commands, the open page shows the new percentage without a reload.

Needs Debian's `chromium` (in the Makefile's SYSTEM_PACKAGES); without it the test fails
and names the package. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.chromium import PACKAGE, chromium, find_chromium
from tests.support.incidents import open_via_opener
from tests.support.recorded_metrics import SteadySource

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"

CONFIG = """
channel: "#deployments"
timezone: Europe/Paris
roles:
  leads: [U0CORA]
  operators: [U0FORGE]
gates:
  error_rate:
    query: 'sum(rate(http_requests_total{flag="{flag}",code=~"5.."}[1m]))'
    fail_above: {canary: 0.005, progressive: 0.01, final: 0.01}
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
    gates: [error_rate]
  - name: search-v2
    flag: search_v2
    plan: fast
  - name: checkout-redesign
    flag: checkout_redesign
    plan: six-day
"""

PHASE_4 = "document.getElementById('rollout-phase-4').innerText"
PERCENT = "document.querySelector('#rollout-phase-4 .pct').innerText"


async def test_the_open_page_follows_the_rollout_live(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    if find_chromium() is None:
        pytest.fail(
            f"Chromium is not installed: install the Debian package `{PACKAGE}` "
            f"(apt-get install -y {PACKAGE}, or `make test`, which installs SYSTEM_PACKAGES)"
        )
    standin.set_user("U0CORA", real_name="Cora Diaz", display_name="Cora")
    bot = await make_bot(CONFIG, metrics_source=SteadySource(0.0021))
    cora = SlackUser(http, bot, "U0CORA")
    forge = SlackUser(http, bot, "U0FORGE")
    await cora.say("start phase-4")
    await cora.say("start search-v2")
    await forge.say("pause search-v2 p95 <300ms? checking the cache first")

    async with chromium(tmp_path / "profile") as page:
        await page.viewport(1280, 860)
        await page.goto(f"{bot.url}/")
        assert await page.evaluate(PERCENT) == "5 % · stage 1 of 6"
        # Server-sent events, or polling if none came within the page's 10 s (a loaded
        # machine): either way the page follows the rollout without a reload.
        await page.wait_for("document.getElementById('live').textContent.startsWith('live')")
        await page.evaluate("window.loadedOnce = 'still the same page'")

        await cora.say("advance next phase-4 force canary checked by hand")
        await page.wait_for(f"{PERCENT} === '10 % · stage 2 of 6'")
        assert "@Cora advanced 5 % → 10 % (slash)" in await page.evaluate(PHASE_4)

        await cora.say("advance 25 phase-4 force canary checked by hand")
        await page.wait_for(f"{PERCENT} === '25 % · stage 3 of 6'")
        assert await page.evaluate("window.loadedOnce") == "still the same page"
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
        bar = "document.querySelector('#rollout-phase-4 [role=progressbar]')"
        assert await page.evaluate(f"{bar}.getAttribute('aria-valuenow')") == "25"

        await open_via_opener(bot, "search-v2", summary="p95 412 ms > 300 ms for 10m")
        await page.wait_for("document.body.textContent.includes('Open incidents (1)')")
        body = await page.evaluate("document.body.innerText")
        assert "Held: p95 <300ms? checking the cache first" in body  # shown as text, escaped
        assert "p95 412 ms > 300 ms for 10m" in body
        # measured again at once against the progressive tier's threshold (0.005 at canary)
        await page.wait_for(f"{PHASE_4}.includes('error_rate\\tgreen\\t0.0021\\t0.01')")
        assert "checkout-redesign" in body and "not started" in body
        await page.screenshot(ARTIFACTS / "dashboard.png")

        await page.viewport(390, 844, mobile=True)
        await page.wait_for("window.innerWidth === 390")
        overflow = "document.documentElement.scrollWidth - window.innerWidth"
        assert await page.evaluate(overflow) <= 0, "the page scrolls sideways on a phone"
        await page.screenshot(ARTIFACTS / "dashboard-phone.png")
