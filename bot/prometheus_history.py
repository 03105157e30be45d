"""A gate's history from Prometheus, for a rehearsal: range queries at the gate's interval.

Prometheus refuses a range query that would answer more than 11,000 points per series, so
a long period is read in chunks of at most `CHUNK_POINTS` steps, a few at a time. Every
series the query returns is kept (the worst one counts, as live). A chunk Prometheus could
not answer becomes a stretch in which the source was down; nothing here raises.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.domain.assess import GateRule
from bot.domain.rehearsal import History

CHUNK_POINTS = 10_000  # under Prometheus's 11,000 points per series
CONCURRENT_CHUNKS = 4


class PrometheusHistory:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    async def histories(
        self, rules: list[GateRule], flag: str, start: datetime, end: datetime
    ) -> list[History]:
        slots = asyncio.Semaphore(CONCURRENT_CHUNKS)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            return list(
                await asyncio.gather(
                    *(self._history(http, slots, rule, flag, start, end) for rule in rules)
                )
            )

    async def retention(self) -> str:
        """How long this Prometheus keeps data ("15d"), or "" when it does not say."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(f"{self.url}/api/v1/status/runtimeinfo") as response,
            ):
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return ""
        data = body.get("data") if isinstance(body, dict) else None
        return str(data.get("storageRetention", "")) if isinstance(data, dict) else ""

    async def _history(
        self,
        http: aiohttp.ClientSession,
        slots: asyncio.Semaphore,
        rule: GateRule,
        flag: str,
        start: datetime,
        end: datetime,
    ) -> History:
        query = rule.query_for(flag)
        chunks = chunk_ranges(start, end, rule.interval)
        answers = await asyncio.gather(
            *(self._chunk(http, slots, query, a, b, rule.interval) for a, b in chunks)
        )
        by_time: dict[datetime, list[float]] = defaultdict(list)
        errors = []
        for (a, b), (points, error) in zip(chunks, answers, strict=True):
            if error:
                errors.append((a, b + rule.interval, error))
            for at, value in points:
                by_time[at].append(value)
        times = sorted(by_time)
        return History(
            rule, tuple(times), tuple(tuple(by_time[t]) for t in times), tuple(errors)
        )

    async def _chunk(
        self,
        http: aiohttp.ClientSession,
        slots: asyncio.Semaphore,
        query: str,
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> tuple[list[tuple[datetime, float]], str]:
        params = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}s",
        }
        try:
            async with slots, http.get(f"{self.url}/api/v1/query_range", params=params) as r:
                body = await r.json(content_type=None)
                status = r.status
        except TimeoutError:
            return [], f"Prometheus did not answer within {self.timeout:g}s"
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            return [], f"Prometheus is unreachable ({type(exc).__name__}: {exc})"[:300]
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else str(body)[:200]
            return [], f"Prometheus refused the query (HTTP {status}): {error}"[:300]
        return _points(body.get("data", {}).get("result", [])), ""


def chunk_ranges(
    start: datetime, end: datetime, step: timedelta
) -> list[tuple[datetime, datetime]]:
    """[start, end] in pieces of at most CHUNK_POINTS steps, each sample in exactly one."""
    span = step * (CHUNK_POINTS - 1)
    chunks = []
    at = start
    while at <= end:
        last = min(at + span, end)
        chunks.append((at, last))
        at = last + step
    return chunks


def _points(result: Any) -> list[tuple[datetime, float]]:
    points = []
    for series in result if isinstance(result, list) else []:
        for stamp, value in series.get("values", []) if isinstance(series, dict) else []:
            try:
                number = float(value)
                moment = datetime.fromtimestamp(float(stamp), UTC)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                points.append((moment, number))
    return points
