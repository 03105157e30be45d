"""Whatever answers at Prometheus's URL, a measurement comes back: garbage, a 500, error
JSON, a huge or deeply nested answer are each SOURCE_DOWN with what was wrong, never an
exception and never a value; a real Prometheus behind the same proxy is measured, and with
a clock, at the clock's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import ManualClock
from bot.domain.assess import Measurement
from bot.prometheus import MAX_ANSWER_BYTES, PrometheusSource
from tests.support.backfill import backfilled_prometheus, request_counters
from tests.support.fault_proxy import GARBAGE, Answer, FaultProxy, success

EXPECTED = {  # words each answer's error holds
    "html page": "not its API's JSON",
    "http 500": "HTTP Status Code 500",
    "http 502 html": "HTTP Status Code 502",
    "query error json": "HTTP Status Code 422",
    "error json with 200": "not its API's JSON",
    "truncated json": "not its API's JSON",
    "nested 100000 deep": "not its API's JSON",
    "a value that is not a number": "not [time, number]",
    "a sample of the wrong shape": "not [time, number]",
    "a result that is not a list": "unexpected answer",
    "8 MiB answer": f"more than {MAX_ANSWER_BYTES:,} bytes",
    "an empty 200": "not its API's JSON",
}


async def test_every_kind_of_garbage_is_source_down_with_the_reason(proxy: FaultProxy) -> None:
    assert set(EXPECTED) == {a.name for a in GARBAGE}
    source = PrometheusSource(proxy.url, timeout=5)
    for answer in GARBAGE:
        proxy.garbage([answer])
        measured = await source.measure("up")
        assert measured.error and measured.values == (), (answer.name, measured)
        assert EXPECTED[answer.name] in measured.error, (answer.name, measured.error)
        assert len(measured.error) < 600, answer.name  # a reason, not the answer itself
        now = datetime.now(UTC)
        series = await source.series("up", now - timedelta(minutes=5), now, timedelta(seconds=15))
        assert series.error and series.points == (), (answer.name, series)
        # A batch over many flags: SOURCE_DOWN for every one of them, with the reason.
        grouped = await source.measure_grouped('sum by (flag) (up{flag=~"a|b"})', "flag")
        assert grouped.error and grouped.values == {}, (answer.name, grouped)
        assert len(grouped.error) < 600, answer.name
        assert grouped.measurement("a") == grouped.measurement("b") == Measurement.down(
            grouped.error
        )


async def test_a_huge_answer_without_a_length_is_not_read_to_the_end(proxy: FaultProxy) -> None:
    source = PrometheusSource(proxy.url, timeout=5)
    huge = success('[{"metric":{},"value":[1,"' + "9" * (MAX_ANSWER_BYTES + 10) + '"]}]')
    proxy.garbage([Answer("chunked", 200, huge, chunked=True)])
    measured = await source.measure("up")
    assert f"Prometheus answered more than {MAX_ANSWER_BYTES:,} bytes" in measured.error
    # Just under the limit, it is read and judged (a number far past any float: +inf).
    fits = success('[{"metric":{},"value":[1,"' + "9" * (MAX_ANSWER_BYTES - 200) + '"]}]')
    proxy.garbage([Answer("fits", 200, fits, chunked=True)])
    assert await source.measure("up") == Measurement((float("inf"),))


async def test_a_real_prometheus_behind_the_proxy_is_measured(proxy: FaultProxy) -> None:
    source = PrometheusSource(proxy.url, timeout=5)
    measured = await source.measure('up{job="service"}')
    assert measured == Measurement((1.0,))
    await proxy.down()
    assert "connection refused" in (await source.measure("up")).error
    await proxy.up()
    proxy.slow(2.0)
    slow = PrometheusSource(proxy.url, timeout=0.5)
    assert "did not answer within 0.5s" in (await slow.measure("up")).error


async def test_with_a_clock_a_gate_is_measured_at_the_clocks_time() -> None:
    """A bot on a stepped clock over a Prometheus holding that period (`serve
    --measure-at-clock`) reads each value as it was at the clock's time, one query or one
    for many flags alike; without a clock, at Prometheus's own now, where this one holds
    nothing."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    turn = start + timedelta(hours=1)

    def traffic(at: datetime) -> tuple[float, float]:
        return 10.0, 0.01 if at < turn else 0.2

    step = timedelta(seconds=15)
    text = request_counters({"a": traffic}, start, start + timedelta(hours=2), step)
    server = await backfilled_prometheus(text)
    try:
        clock = ManualClock(start + timedelta(minutes=30))
        source = PrometheusSource(server.url, timeout=10, clock=clock)
        ratio = (
            'sum(rate(http_requests_total{flag="a",code="500"}[5m]))'
            ' / sum(rate(http_requests_total{flag="a"}[5m]))'
        )
        before = await source.measure(ratio)
        assert before.values == (pytest.approx(0.01, rel=0.05),), before
        await clock.advance(timedelta(hours=1))
        after = await source.measure(ratio)
        assert after.values == (pytest.approx(0.2, rel=0.05),), after
        grouped = await source.measure_grouped(
            'sum by (flag) (rate(http_requests_total{code="500"}[5m]))'
            ' / sum by (flag) (rate(http_requests_total[5m]))',
            "flag",
        )
        assert grouped.error == "" and grouped.values["a"] == (pytest.approx(0.2, rel=0.05),)
        now = await PrometheusSource(server.url, timeout=10).measure(ratio)
        assert now.values == () and not now.error, now  # no data at the real now
    finally:
        server.close()
