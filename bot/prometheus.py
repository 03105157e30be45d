"""Metrics sources for gates: Prometheus, or anything else that answers a query.

`measure` never raises. An unreachable server, a timeout, an HTTP error or a query
Prometheus refuses all become a `Measurement` with an error (SOURCE_DOWN); an empty
result is a measurement with no values (NO_DATA), never zero.

prometheus-api-client is synchronous (requests), so each query runs in a worker thread
(`asyncio.to_thread`) under a timeout: a slow Prometheus never stalls the event loop, the
Slack listeners or other rollouts' ticks.

Whatever answers at the URL is read with suspicion: an answer over `MAX_ANSWER_BYTES` is
not read on, and HTML, a 500, an error JSON, a result of the wrong shape or a value that
is not a number are each SOURCE_DOWN with what was wrong, never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from bot.clock import Clock
from bot.domain.assess import Measurement

log = logging.getLogger(__name__)

# A gate query aggregates to a series or a few: its answer is a few hundred bytes. A proxy
# or a query gone wrong that answers megabytes is not read on.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class AnswerTooBig(Exception):
    """Prometheus (or what answers at its URL) sent more than MAX_ANSWER_BYTES."""


class Garbage(Exception):
    """An answer that is not what Prometheus's API sends."""


class PrometheusRefused(Exception):
    """Prometheus answered a query with an error status (a bad query, an overload)."""


class MetricsSource(Protocol):
    async def measure(self, query: str) -> Measurement: ...


@dataclass(frozen=True)
class Grouped:
    """One query's answer for many flags: each series' value under the value of its flag
    label. A flag without a series has no entry (NO_DATA for it alone); `error` set means
    the source could not answer (SOURCE_DOWN for every flag asked about)."""

    values: dict[str, tuple[float, ...]]
    error: str = ""

    def measurement(self, flag: str) -> Measurement:
        if self.error:
            return Measurement.down(self.error)
        return Measurement(self.values.get(flag, ()))


@runtime_checkable
class GroupedSource(Protocol):
    """A source that answers a query for many flags at once, never raising."""

    async def measure_grouped(self, query: str, label: str) -> Grouped: ...


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
    def __init__(
        self, url: str, timeout: float = 5.0, concurrency: int = 8, clock: Clock | None = None
    ) -> None:
        """`clock`: instant queries ask for the value at its now (the moment the bot decides
        at, which a test may step), not at Prometheus's own now."""
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
        self._client._session.hooks["response"].append(_read_bounded)
        self._slots = asyncio.Semaphore(concurrency)
        self.clock = clock

    def _at(self) -> dict[str, str]:
        """The `time` parameter of an instant query, when the bot has a clock of its own."""
        return {} if self.clock is None else {"time": f"{self.clock.now().timestamp():.3f}"}

    async def measure(self, query: str) -> Measurement:
        try:
            async with self._slots:
                result = await asyncio.wait_for(
                    asyncio.to_thread(self._client.custom_query, query, self._at()),
                    self.timeout,
                )
        except TimeoutError:
            return Measurement.down(f"Prometheus did not answer within {self.timeout:g}s")
        except Exception as exc:  # the client raises many kinds; every one means "down"
            return Measurement.down(_explain(exc))
        return _values(result)

    async def measure_grouped(self, query: str, label: str) -> Grouped:
        """One instant query whose series are told apart by `label`. Sent as a form body
        (POST): a regex over thousands of flags is longer than a URL should be."""

        def ask() -> Any:
            response = self._client._session.post(
                f"{self.url}/api/v1/query",
                data={"query": query, **self._at()},
                timeout=self.timeout,
            )
            if response.status_code != 200:
                raise PrometheusRefused(f"HTTP {response.status_code}: {response.text[:300]}")
            return response.json()["data"]["result"]

        try:
            async with self._slots:
                result = await asyncio.wait_for(asyncio.to_thread(ask), self.timeout)
        except TimeoutError:
            return Grouped({}, f"Prometheus did not answer within {self.timeout:g}s")
        except Exception as exc:
            return Grouped({}, _explain(exc))
        try:
            return Grouped(_grouped(result, label))
        except Garbage as exc:
            return Grouped({}, str(exc))

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
    try:
        return _first_series(result)
    except Garbage as exc:
        return Series(error=str(exc))


def _first_series(result: Any) -> Series:
    if not isinstance(result, list):
        raise Garbage(f"unexpected answer from Prometheus: {_shown(result)}")
    if not result:
        return Series()
    first = result[0]
    values = first.get("values") if isinstance(first, dict) else None
    if not isinstance(values, list):
        raise Garbage(f"unexpected series from Prometheus: {_shown(first)}")
    points = []
    for point in values:
        stamp, number = _sample(point)
        if math.isfinite(number) and math.isfinite(stamp):
            try:
                points.append((datetime.fromtimestamp(stamp, UTC), number))
            except (OverflowError, OSError, ValueError):
                raise Garbage(f"a sample time out of range: {_shown(point)}") from None
    return Series(tuple(points), series_count=len(result))


def _values(result: Any) -> Measurement:
    """Values from an instant query's `result`: a vector, or a scalar."""
    try:
        return Measurement(_numbers(result))
    except Garbage as exc:
        return Measurement.down(str(exc))


def _grouped(result: Any, label: str) -> dict[str, tuple[float, ...]]:
    """An instant vector's values by the value of `label` (a series without it is no
    flag's: it is left out)."""
    if not isinstance(result, list):
        raise Garbage(f"unexpected answer from Prometheus: {_shown(result)}")
    found: dict[str, list[float]] = {}
    for series in result:
        if not isinstance(series, dict) or "value" not in series:
            raise Garbage(f"unexpected series from Prometheus: {_shown(series)}")
        labels = series.get("metric")
        flag = labels.get(label) if isinstance(labels, dict) else None
        value = _sample(series["value"])[1]
        if isinstance(flag, str):
            found.setdefault(flag, []).append(value)
    return {flag: tuple(values) for flag, values in found.items()}


def _numbers(result: Any) -> tuple[float, ...]:
    if not isinstance(result, list):
        raise Garbage(f"unexpected answer from Prometheus: {_shown(result)}")
    if len(result) == 2 and not isinstance(result[0], dict):  # a scalar: [time, "value"]
        return (_sample(result)[1],)
    values = []
    for series in result:
        if not isinstance(series, dict) or "value" not in series:
            raise Garbage(f"unexpected series from Prometheus: {_shown(series)}")
        values.append(_sample(series["value"])[1])
    return tuple(values)


def _sample(point: Any) -> tuple[float, float]:
    """A sample `[time, "value"]` as two floats (Prometheus writes values as strings:
    "1.5", "NaN", "+Inf")."""
    try:
        stamp, value = point
        return float(stamp), float(value)
    except (TypeError, ValueError, OverflowError):
        raise Garbage(f"a sample that is not [time, number]: {_shown(point)}") from None


def _shown(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_bounded(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A `requests` response hook: read the body here, at most MAX_ANSWER_BYTES of it.

    requests runs response hooks before it reads the body, so an answer that would not
    fit raises AnswerTooBig (SOURCE_DOWN) instead of filling the memory.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        response.close()
        raise AnswerTooBig(
            f"Prometheus answered {int(declared):,} bytes, more than {MAX_ANSWER_BYTES:,} bytes"
        )
    body = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    if len(body) > MAX_ANSWER_BYTES:
        response.close()
        raise AnswerTooBig(f"Prometheus answered more than {MAX_ANSWER_BYTES:,} bytes")
    response._content = body  # what `response.content` and `.json()` read from now on
    response._content_consumed = True
    return response


def _explain(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "Prometheus is unreachable (connection refused)"
    if name in ("PrometheusApiClientException", "PrometheusRefused"):
        return f"Prometheus refused the query: {text[:300]}"
    if isinstance(exc, AnswerTooBig):
        return f"{text}: far more than a gate query's answer"
    if isinstance(exc, ValueError | KeyError | TypeError | RecursionError):
        # 200 with HTML, `{"status": "error"}` or JSON nested past the recursion limit
        return f"Prometheus answered something that is not its API's JSON ({name}: {text[:200]})"
    return f"{name}: {text[:300]}"
