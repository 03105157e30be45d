"""A metrics source that answers from recorded series (tests/fixtures/recorded_series.json).

Instant queries answer the last recorded value at or before the clock's time; range queries
answer the recorded points in the range. Queries are recognised by the gate they belong to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from bot.clock import Clock
from bot.domain.assess import Measurement
from bot.prometheus import Series

FIXTURE = Path(__file__).parents[1] / "fixtures" / "recorded_series.json"


class RecordedSource:
    def __init__(self, clock: Clock, queries: dict[str, str], down: bool = False) -> None:
        """`queries` maps a query (as the bot sends it) to a recorded series' name."""
        raw = json.loads(FIXTURE.read_text())
        self.series_by_name = {
            name: [(datetime.fromisoformat(t), float(v)) for t, v in points]
            for name, points in raw.items()
        }
        self.clock = clock
        self.queries = queries
        self.down = down
        self.range_queries: list[str] = []

    def _points(self, query: str) -> list[tuple[datetime, float]]:
        return self.series_by_name.get(self.queries.get(query, ""), [])

    async def measure(self, query: str) -> Measurement:
        if self.down:
            return Measurement.down("Prometheus is unreachable (connection refused)")
        now = self.clock.now()
        past = [v for t, v in self._points(query) if t <= now]
        return Measurement((past[-1],) if past else ())

    async def series(self, query: str, start: datetime, end: datetime, step: timedelta) -> Series:
        self.range_queries.append(query)
        if self.down:
            return Series(error="Prometheus is unreachable (connection refused)")
        return Series(tuple((t, v) for t, v in self._points(query) if start <= t <= end))


class SteadySource:
    """A metrics source whose every query answers the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    async def measure(self, query: str) -> Measurement:
        return Measurement((self.value,))


class ModelledSource:
    """A metrics source whose every query answers `value_at(time)`: instant queries at the
    clock's time, range queries at each step, like Prometheus evaluating a range."""

    def __init__(self, clock: Clock, value_at: Callable[[datetime], float]) -> None:
        self.clock = clock
        self.value_at = value_at
        self.range_queries: list[tuple[datetime, datetime]] = []

    async def measure(self, query: str) -> Measurement:
        return Measurement((self.value_at(self.clock.now()),))

    async def series(self, query: str, start: datetime, end: datetime, step: timedelta) -> Series:
        self.range_queries.append((start, end))
        points, at = [], start
        while at <= end:
            points.append((at, self.value_at(at)))
            at += step
        return Series(tuple(points))
