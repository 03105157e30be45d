"""The integration harness itself: real Prometheus scraping FakeService, real Alertmanager.

Windows are 5 s (scrapes every 1 s) so a change the test makes is fully visible ~5 s later.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from tests.support.alertmanager_server import AlertmanagerFactory
from tests.support.fake_service import FakeService
from tests.support.prometheus_server import PrometheusServer

WINDOW = "5s"
TOLERANCE = 0.02


def error_ratio(flag: str, window: str = WINDOW) -> str:
    return (
        f'sum(rate(http_requests_total{{flag="{flag}",code=~"5.."}}[{window}]))'
        f' / sum(rate(http_requests_total{{flag="{flag}"}}[{window}]))'
    )


def p95(flag: str, window: str = WINDOW) -> str:
    return (
        "histogram_quantile(0.95, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{flag="{flag}"}}[{window}])))'
    )


def near(expected: float, tolerance: float = TOLERANCE) -> Any:
    def check(value: float | None) -> bool:
        return value is not None and not math.isnan(value) and abs(value - expected) <= tolerance

    return check


def interpolated_p95(lower: float, upper: float) -> float:
    """What histogram_quantile gives when every observation falls in (lower, upper]."""
    return lower + (upper - lower) * 0.95


async def test_error_ratio_and_p95_track_what_the_test_sets(
    fake_service: FakeService, prometheus: PrometheusServer
) -> None:
    fake_service.set("f", rps=50, error_rate=0.0, latency_s=0.08)
    # Both code series exist from the start, so 0 % errors reads 0 and not "no data".
    ratio, latency = await asyncio.gather(
        prometheus.wait_for_value(error_ratio("f"), lambda v: v == 0.0, timeout=60),
        prometheus.wait_for_value(p95("f"), near(interpolated_p95(0.05, 0.1), 1e-6), timeout=10),
    )
    assert ratio == 0.0
    assert latency is not None and 0.05 < latency <= 0.1

    fake_service.set("f", rps=50, error_rate=0.2, latency_s=0.22)
    ratio, latency = await asyncio.gather(
        prometheus.wait_for_value(error_ratio("f"), near(0.2), timeout=60),
        prometheus.wait_for_value(p95("f"), near(interpolated_p95(0.2, 0.25), 1e-6), timeout=15),
    )
    assert ratio is not None and abs(ratio - 0.2) <= TOLERANCE
    assert latency is not None and 0.2 < latency <= 0.25

    # The window is entirely at the new settings now: both stay put, scrape after scrape.
    for _ in range(3):
        await asyncio.sleep(1)
        assert near(0.2)(await prometheus.query_value(error_ratio("f")))
        assert near(interpolated_p95(0.2, 0.25), 1e-6)(await prometheus.query_value(p95("f")))


async def test_a_flag_without_traffic_gives_an_empty_result(
    fake_service: FakeService, prometheus: PrometheusServer
) -> None:
    assert await prometheus.query_value(error_ratio("never-set")) is None
    assert await prometheus.query_value(p95("never-set")) is None

    fake_service.set("g", rps=20, error_rate=0.5)
    await prometheus.wait_for_value(error_ratio("g"), near(0.5), timeout=60)

    fake_service.stop_traffic("g")  # series leave /metrics; Prometheus marks them stale
    await prometheus.wait_for_value(error_ratio("g"), lambda v: v is None, timeout=60)
    assert await prometheus.query_value(p95("g")) is None
    assert await prometheus.query('http_requests_total{flag="g"}') == []


async def test_restart_keeps_port_and_data(
    fake_service: FakeService, prometheus: PrometheusServer
) -> None:
    fake_service.set("r", rps=10)
    series = 'http_requests_total{flag="r"}'
    total = f"sum({series})"
    # A sample at least 1 s old is committed for sure; read the value as of that moment.
    await prometheus.wait_for_value(f"sum({series} offset 1s)", lambda v: v is not None, timeout=60)
    at = time.time() - 1.0
    before = await prometheus.query_value(total, at=at)
    url = prometheus.url

    await prometheus.restart()  # returns once a scrape from the new process has landed

    assert prometheus.url == url
    assert before is not None and before > 0
    assert await prometheus.query_value(total, at=at) == before  # replayed from the WAL
    after = await prometheus.query_value(total)
    assert after is not None and after > before


def test_fake_service_counts_are_exact_and_piecewise_linear() -> None:
    now = [100.0]
    service = FakeService(clock=lambda: now[0])
    service.set("f", rps=50, error_rate=0.2, latency_s=0.22)
    now[0] += 2.5
    service.set("f", rps=10, error_rate=0.0, latency_s=0.08)
    now[0] += 1.0
    assert service.totals("f") == {"requests": 135, "errors": 25, "sum": 125 * 0.22 + 10 * 0.08}
    text = generate_latest(service.registry).decode()
    assert 'http_requests_total{code="500",flag="f"} 25.0' in text
    assert 'http_request_duration_seconds_bucket{flag="f",le="0.1"} 10.0' in text
    assert 'http_request_duration_seconds_bucket{flag="f",le="0.25"} 135.0' in text
    service.stop_traffic("f")
    assert 'flag="f"' not in generate_latest(service.registry).decode()


# -- Alertmanager ------------------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    """The tiny stand-in for the bot's ``/alertmanager`` endpoint."""

    url: str = ""
    payloads: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    authorizations: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        await self.payloads.put(await request.json())
        return web.Response(status=200)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.payloads.get(), timeout)


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/alertmanager", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def test_alertmanager_delivers_firing_then_resolved(
    alertmanager_factory: AlertmanagerFactory, webhook_receiver: WebhookReceiver
) -> None:
    am = await alertmanager_factory(webhook_receiver.url, bearer_token="hook-token")
    labels = {"alertname": "HighErrorRate", "rollout": "new-checkout", "severity": "critical"}
    await am.post_alerts([{"labels": labels, "annotations": {"summary": "5xx above 1 %"}}])

    firing = await webhook_receiver.next()
    assert firing["version"] == "4"
    assert firing["status"] == "firing"
    assert firing["receiver"] == "rollout-bot"
    assert firing["groupLabels"] == {"alertname": "HighErrorRate", "rollout": "new-checkout"}
    assert firing["commonAnnotations"] == {"summary": "5xx above 1 %"}
    assert 'rollout="new-checkout"' in firing["groupKey"]
    [alert] = firing["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == labels
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
    assert webhook_receiver.authorizations == ["Bearer hook-token"]

    await am.resolve(labels)

    resolved = await webhook_receiver.next()
    assert resolved["status"] == "resolved"
    assert resolved["groupKey"] == firing["groupKey"]
    [done] = resolved["alerts"]
    assert done["status"] == "resolved"
    assert done["fingerprint"] == alert["fingerprint"]
    assert not done["endsAt"].startswith("0001-")
    assert webhook_receiver.payloads.empty()
