"""Measuring the gates due in a tick: one query per gate for every rollout that shares it.

Where the source answers grouped queries (`GroupedSource`, Prometheus) and the gate's query
keeps the flag label (`batched_query.plan`), one query measures the gate for every rollout
due: each rollout gets the series of its own flag, a flag missing from the answer is
NO_DATA for that rollout alone, and a failed query is SOURCE_DOWN for all of them. Any other
gate, or any other source, is measured once per rollout with the rollout's own query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from bot.domain.assess import GateRule, Measurement
from bot.domain.batched_query import Batched, PerRollout, plan
from bot.domain.rollout import RolloutSpec
from bot.prometheus import GroupedSource, MetricsSource

Plans = Mapping[str, Batched | PerRollout]


class Due(NamedTuple):
    """A rollout and the gates of it a tick measures."""

    spec: RolloutSpec
    rules: Sequence[GateRule]


def plans_of(rules: Mapping[str, GateRule]) -> dict[str, Batched | PerRollout]:
    """How each gate is measured: batched, or per rollout and why."""
    return {name: plan(rule.query) for name, rule in rules.items()}


async def measure_due(
    source: MetricsSource, plans: Plans, due: Sequence[Due]
) -> dict[tuple[str, str], Measurement]:
    """Every due gate of every rollout, keyed by (rollout, gate)."""
    grouped = isinstance(source, GroupedSource)
    batches: dict[str, list[RolloutSpec]] = {}
    single: list[tuple[RolloutSpec, GateRule]] = []
    rules: dict[str, GateRule] = {}
    for spec, wanted in due:
        for rule in wanted:
            rules[rule.name] = rule
            if grouped and isinstance(plans.get(rule.name), Batched):
                batches.setdefault(rule.name, []).append(spec)
            else:
                single.append((spec, rule))
    found: dict[tuple[str, str], Measurement] = {}

    async def batch(gate: str, specs: list[RolloutSpec]) -> None:
        how = plans[gate]
        assert isinstance(how, Batched) and isinstance(source, GroupedSource)
        answer = await source.measure_grouped(how.query(s.flag for s in specs), how.label)
        for spec in specs:
            found[spec.name, gate] = answer.measurement(spec.flag)

    async def one(spec: RolloutSpec, rule: GateRule) -> None:
        found[spec.name, rule.name] = await source.measure(rule.query_for(spec.flag))

    await asyncio.gather(
        *(batch(gate, specs) for gate, specs in batches.items()),
        *(one(spec, rule) for spec, rule in single),
    )
    return found
