"""A real Prometheus scrapes the bot's `/metrics` and sees each rollout: its percentage after an
advance, its state, whether it is held, and its gate's last value, measured by the same
Prometheus."""

from __future__ import annotations

import aiohttp

from tests.conftest import BotFactory, SlackUser
from tests.support.prometheus_server import PrometheusFactory, free_port

JOB = "rollout-bot"

CONFIG = f"""
channel: "#deployments"
roles: {{leads: [U0CORA], operators: [U0FORGE]}}
gates:
  scraped:
    query: 'min(up{{job="{JOB}"}})'
    fail_below: {{canary: 0.5, progressive: 0.5, final: 0.5}}
    for: 5s
    interval: 1s
plans:
  quick:
    stages:
      - {{percent: 5, soak: 1h}}
      - {{percent: 25, soak: 1h}}
      - {{percent: 100, soak: 1h}}
rollouts:
  - name: checkout
    flag: new_checkout
    plan: quick
    gates: [scraped]
  - name: search
    flag: search_v2
    plan: quick
"""

CHECKOUT = '{rollout="checkout",flag="new_checkout"}'


async def test_prometheus_scrapes_each_rollouts_percentage_state_and_gates(
    make_bot: BotFactory, prometheus_factory: PrometheusFactory, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    prometheus = await prometheus_factory(
        [f"127.0.0.1:{port}"], job_name=JOB, wait_for_targets=False
    )
    bot = await make_bot(CONFIG, port=port, prometheus_url=prometheus.url)
    lead = SlackUser(http, bot, "U0CORA")

    await prometheus.wait_for_value(f"rollout_bot_rollout_percent{CHECKOUT}", lambda v: v == 0)
    await prometheus.wait_for_value(
        'rollout_bot_rollout_state{rollout="search",state="pending"}', lambda v: v == 1
    )

    await lead.say("start checkout")
    await lead.say("advance 25 checkout force the metrics test")
    await prometheus.wait_for_value(f"rollout_bot_rollout_percent{CHECKOUT}", lambda v: v == 25)
    assert await prometheus.query_value(
        'rollout_bot_rollout_state{rollout="checkout",state="progressing"}'
    ) == 1
    assert await prometheus.query_value(
        'rollout_bot_rollout_tier{rollout="checkout",tier="progressive"}'
    ) == 1
    assert await prometheus.query_value(f"rollout_bot_rollout_held{CHECKOUT}") == 0
    seconds = await prometheus.query_value(f"rollout_bot_rollout_stage_seconds{CHECKOUT}")
    assert seconds is not None and 0 <= seconds < 120
    # The other rollout is untouched, in its own series.
    assert await prometheus.query_value('rollout_bot_rollout_percent{rollout="search"}') == 0

    # The gate's last value and outcome, measured by this Prometheus (the bot is up: 1).
    await prometheus.wait_for_value(
        'rollout_bot_gate_outcome{rollout="checkout",gate="scraped",outcome="pass"}',
        lambda v: v == 1,
    )
    assert await prometheus.query_value(
        'rollout_bot_gate_value{rollout="checkout",gate="scraped"}'
    ) == 1
    assert await prometheus.query_value(
        'rollout_bot_gate_threshold{rollout="checkout",gate="scraped"}'
    ) == 0.5

    await SlackUser(http, bot, "U0FORGE").say("pause checkout -- watching the dashboards")
    await prometheus.wait_for_value(f"rollout_bot_rollout_held{CHECKOUT}", lambda v: v == 1)
    assert await prometheus.query_value(
        'rollout_bot_rollout_state{rollout="checkout",state="progressing"}'
    ) == 0
    # The README's panel query: one series per rollout.
    panel = await prometheus.query("max by (rollout) (rollout_bot_rollout_percent)")
    assert {s["metric"]["rollout"]: s["value"][1] for s in panel} == {
        "checkout": "25",
        "search": "0",
    }
