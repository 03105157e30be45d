"""The demo's simulated service: answers the genesis gates' queries, deterministically,
with faults on schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import ManualClock
from bot.config import load_config
from bot.demo.metrics import (
    ERROR_RATE,
    P95_LATENCY,
    TEST_PASS_RATE,
    Fault,
    SimulatedService,
    recognise,
)

GENESIS = Path(__file__).resolve().parents[2] / "bot" / "examples" / "genesis-phase4.yml"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FLAG = "phase_4_deployment"


def queries() -> dict[str, str]:
    rules = load_config(GENESIS).gate_rules()
    return {name: rule.query_for(FLAG) for name, rule in rules.items()}


def test_each_genesis_gate_query_is_recognised() -> None:
    q = queries()
    assert recognise(q["error_rate"]) == (ERROR_RATE, FLAG)
    assert recognise(q["p95_latency"]) == (P95_LATENCY, FLAG)
    assert recognise(q["test_pass_rate"]) == (TEST_PASS_RATE, FLAG)


async def test_healthy_values_pass_every_genesis_threshold() -> None:
    clock = ManualClock(T0)
    service = SimulatedService(clock)
    q = queries()
    for _ in range(200):
        assert (await service.measure(q["error_rate"])).values[0] < 0.005
        assert (await service.measure(q["p95_latency"])).values[0] < 0.25
        assert (await service.measure(q["test_pass_rate"])).values[0] > 0.98
        await clock.advance(timedelta(minutes=7))


async def test_same_seed_same_values_and_series_agrees_with_measure() -> None:
    q = queries()["error_rate"]
    a, b = SimulatedService(ManualClock(T0), seed=7), SimulatedService(ManualClock(T0), seed=7)
    assert await a.measure(q) == await b.measure(q)
    other = SimulatedService(ManualClock(T0), seed=8)
    assert await other.measure(q) != await a.measure(q)
    series = await a.series(q, T0, T0 + timedelta(hours=1), timedelta(minutes=15))
    assert [t for t, _ in series.points] == [T0 + timedelta(minutes=15 * i) for i in range(5)]
    assert series.points[0][1] == (await a.measure(q)).values[0]


async def test_a_fault_takes_effect_at_its_start_and_ends_at_its_end() -> None:
    clock = ManualClock(T0)
    service = SimulatedService(clock)
    start = T0 + timedelta(hours=1)
    service.inject(Fault(ERROR_RATE, 0.024, start, start + timedelta(hours=1), flag=FLAG))
    q = queries()["error_rate"]
    assert (await service.measure(q)).values[0] < 0.01
    await clock.set(start)
    assert (await service.measure(q)).values[0] > 0.01
    await clock.advance(timedelta(hours=1))
    assert (await service.measure(q)).values[0] < 0.01
    # only the faulty flag, only the faulty signal
    other = q.replace(FLAG, "search_v2")
    assert (await service.series(other, start, start, timedelta(minutes=1))).points[0][1] < 0.01


async def test_a_query_it_cannot_place_is_a_down_source_not_a_number() -> None:
    service = SimulatedService(ManualClock(T0))
    measured = await service.measure('up{job="node"}')
    assert measured.error and not measured.values
    assert (await service.series("up", T0, T0, timedelta(minutes=1))).error
