"""Metrics sources for gates: Prometheus, or anything else that answers a query.

`measure` never raises. An unreachable server, a timeout, an HTTP error or a query
Prometheus refuses all become a `Measurement` with an error (SOURCE_DOWN); an empty
result is a measurement with no values (NO_DATA), never zero.

prometheus-api-client is synchronous (requests), so each query runs in a worker thread
(`asyncio.to_thread`) under a timeout: a slow Prometheus never stalls the event loop, the
Slack listeners or other rollouts' ticks.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from bot.domain.assess import Measurement

log = logging.getLogger(__name__)


class MetricsSource(Protocol):
    async def measure(self, query: str) -> Measurement: ...


@dataclass(frozen=True)
class Series:
    """A query's history over a range. `error` set means the source could not answer."""

    points: tuple[tuple[datetime, float], ...] = ()  # of the first series
    error: str = ""
    series_count: int = 1  # how many series the query returned (charts draw the first)


@runtime_checkable
class SeriesSource(Protocol):
    """History for checkpoints and charts: a range query, never raising."""

    async def series(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> Series: ...


class PrometheusSource:
    def __init__(self, url: str, timeout: float = 5.0, concurrency: int = 8) -> None:
        from prometheus_api_client import PrometheusConnect
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.url = url.rstrip("/")
        self.timeout = timeout
        # No retries inside the client: a tick is retried by the next tick, and a retrying
        # client would hide a down source for longer than a gate's interval.
        self._client = PrometheusConnect(
            url=self.url, disable_ssl=True, retry=Retry(total=0), timeout=max(1, int(timeout))
        )
        # A connection pool as large as the number of queries in flight.
        adapter = HTTPAdapter(max_retries=Retry(total=0), pool_maxsize=concurrency)
        self._client._session.mount(self.url, adapter)
        self._slots = asyncio.Semaphore(concurrency)

    async def measure(self, query: str) -> Measurement:
        try:
            async with self._slots:
                result = await asyncio.wait_for(
                    asyncio.to_thread(self._client.custom_query, query), self.timeout
                )
        except TimeoutError:
            return Measurement.down(f"Prometheus did not answer within {self.timeout:g}s")
        except Exception as exc:  # the client raises many kinds; every one means "down"
            return Measurement.down(_explain(exc))
        return _values(result)


    async def series(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> Series:
        def ask() -> Any:
            return self._client.custom_query_range(
                query, start_time=start, end_time=end, step=f"{max(1, int(step.total_seconds()))}s"
            )

        try:
            async with self._slots:
                result = await asyncio.wait_for(asyncio.to_thread(ask), self.timeout * 2)
        except TimeoutError:
            return Series(error=f"Prometheus did not answer within {self.timeout * 2:g}s")
        except Exception as exc:
            return Series(error=_explain(exc))
        return _series(result)


def _series(result: Any) -> Series:
    """The first series of a range query's `result` (gate queries aggregate to one)."""
    if not isinstance(result, list):
        return Series(error=f"unexpected answer from Prometheus: {str(result)[:200]}")
    if not result:
        return Series()
    points = []
    for stamp, value in result[0].get("values", []):
        number = float(value)
        if math.isfinite(number):
            points.append((datetime.fromtimestamp(float(stamp), UTC), number))
    return Series(tuple(points), series_count=len(result))


def _values(result: Any) -> Measurement:
    """Values from an instant query's `result`: a vector, or a scalar."""
    if not isinstance(result, list):
        return Measurement.down(f"unexpected answer from Prometheus: {str(result)[:200]}")
    if len(result) == 2 and not isinstance(result[0], dict):  # a scalar: [time, "value"]
        return Measurement((float(result[1]),))
    values = []
    for series in result:
        try:
            values.append(float(series["value"][1]))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return Measurement(tuple(values))


def _explain(exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "Prometheus is unreachable (connection refused)"
    if name == "PrometheusApiClientException":
        return f"Prometheus refused the query: {text[:300]}"
    return f"{name}: {text[:300]}"
