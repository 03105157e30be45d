"""A simulated service for `rollout-bot demo`: a metrics source like Prometheus, no server.

It models, for each feature flag, the traffic behind that flag as three signals:

- `error_rate`: the share of requests answered 5xx (baseline 0.2 %),
- `p95_latency`: the 95th percentile of request duration, in seconds (baseline 0.18 s),
- `test_pass_rate`: the share of synthetic tests that pass (baseline 0.995),

each its baseline plus bounded noise, plus any scheduled `Fault` (e.g. the error rate rises
to 2.4 % from a given moment). A query is answered by recognising which modelled signal it
asks for, from the metric names Prometheus would hold:

| the query mentions | signal |
| --- | --- |
| `http_requests_total` and a 5xx `code` matcher | `error_rate` |
| `http_request_duration_seconds` (e.g. in `histogram_quantile(0.95, …)`) | `p95_latency` |
| `test_passed_total` (over `test_run_total`) | `test_pass_rate` |

and the flag from its `flag="…"` matcher. That covers the gates of the built-in example
genesis-phase4.yml (bot/examples/); a query it cannot place is answered like a query Prometheus
refuses (SOURCE_DOWN, with the reason), never with a made-up number.

It implements the same `MetricsSource.measure` (an instant query, at the clock's now) and
`SeriesSource.series` (a range query) the Prometheus gates use, so the bot's control loop,
checkpoints and charts run unchanged on it. Deterministic: the noise is a hash of (seed,
flag, signal, minute), so the same seed gives the same values at the same simulated time,
whether asked as an instant or as part of a range.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.domain.assess import Measurement
from bot.prometheus import Series

ERROR_RATE = "error_rate"
P95_LATENCY = "p95_latency"
TEST_PASS_RATE = "test_pass_rate"

_FLAG = re.compile(r"""flag\s*=\s*["']([^"']+)["']""")
_5XX = re.compile(r"""code\s*=~?\s*["']5""")
NOISE_STEP = timedelta(minutes=1)  # the noise changes once a simulated minute


@dataclass(frozen=True)
class Signal:
    """A modelled signal: its baseline and how far noise moves it (either way)."""

    baseline: float
    noise: float
    low: float = 0.0  # values are clipped to [low, high]
    high: float = float("inf")


DEFAULT_SIGNALS: dict[str, Signal] = {
    ERROR_RATE: Signal(0.002, 0.0008, 0.0, 1.0),
    P95_LATENCY: Signal(0.180, 0.020),
    TEST_PASS_RATE: Signal(0.995, 0.003, 0.0, 1.0),
}


@dataclass(frozen=True)
class Fault:
    """From `start` (until `end`, if given), `signal` of `flag` reads `value` instead of its
    baseline (the same noise still applies). `flag` None: every flag."""

    signal: str
    value: float
    start: datetime
    end: datetime | None = None
    flag: str | None = None

    def active(self, flag: str, signal: str, at: datetime) -> bool:
        return (
            self.signal == signal
            and (self.flag is None or self.flag == flag)
            and self.start <= at
            and (self.end is None or at < self.end)
        )


def recognise(query: str) -> tuple[str, str] | None:
    """(signal, flag) a query asks for, or None when it is not one the model answers."""
    match = _FLAG.search(query)
    if match is None:
        return None
    flag = match[1]
    if "http_requests_total" in query and _5XX.search(query):
        return ERROR_RATE, flag
    if "http_request_duration_seconds" in query:
        return P95_LATENCY, flag
    if "test_passed_total" in query:
        return TEST_PASS_RATE, flag
    return None


@dataclass
class SimulatedService:
    """The metrics source of the demo: signals per flag, noise, scheduled faults."""

    clock: Clock
    seed: int = 4
    signals: dict[str, Signal] = field(default_factory=lambda: dict(DEFAULT_SIGNALS))
    faults: list[Fault] = field(default_factory=list)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def value(self, signal: str, flag: str, at: datetime) -> float:
        """The modelled value of `signal` for `flag` at `at`."""
        model = self.signals[signal]
        level = model.baseline
        for fault in self.faults:
            if fault.active(flag, signal, at):
                level = fault.value
        value = level + model.noise * self._jitter(signal, flag, at)
        return min(max(value, model.low), model.high)

    def _jitter(self, signal: str, flag: str, at: datetime) -> float:
        """A deterministic number in [-1, 1) for this signal, flag and minute."""
        minute = int(at.timestamp() // NOISE_STEP.total_seconds())
        digest = hashlib.blake2b(
            f"{self.seed}:{signal}:{flag}:{minute}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") / 2**63 - 1.0

    async def measure(self, query: str) -> Measurement:
        known = recognise(query)
        if known is None:
            return Measurement.down(_unknown(query))
        signal, flag = known
        return Measurement((self.value(signal, flag, self.clock.now()),))

    async def series(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> Series:
        known = recognise(query)
        if known is None:
            return Series(error=_unknown(query))
        signal, flag = known
        return Series(tuple((t, self.value(signal, flag, t)) for t in _steps(start, end, step)))


def _steps(start: datetime, end: datetime, step: timedelta) -> Iterable[datetime]:
    step = max(step, timedelta(seconds=1))
    at = start
    while at <= end:
        yield at
        at += step


def _unknown(query: str) -> str:
    return (
        "the simulated service models error_rate, p95_latency and test_pass_rate only; "
        f"it cannot answer {query[:200]!r}"
    )
