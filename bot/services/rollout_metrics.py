"""Each rollout on `/metrics`, read from the database when Prometheus scrapes, so the series
cannot drift from what `/api/rollouts` says.

`RolloutCollector` is a prometheus-client collector: `refresh()` (awaited by the `/metrics`
handler just before it renders the registry) reads every rollout's status and gate states;
`collect()` turns that reading into metric families. Labels are the rollout, its flag and
the gate (a closed set from the config); enum-like values (state, tier, gate outcome) are
one series per possible value, 1 for the current one and 0 for the others, so a panel or an
alert selects `{state="paused"} == 1` and a change of state never leaves a stale series.

    rollout_bot_rollout_percent{rollout="phase-4",flag="phase_4_deployment"} 25
    rollout_bot_rollout_state{rollout="phase-4",flag="phase_4_deployment",state="paused"} 1
    rollout_bot_rollout_held{rollout="phase-4",flag="phase_4_deployment"} 1
    rollout_bot_gate_value{rollout="phase-4",gate="error_rate"} 0.0042
    rollout_bot_gate_outcome{rollout="phase-4",gate="error_rate",outcome="pass"} 1
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.domain.gates import GateView, Outcome
from bot.domain.plans import Tier, tier_for
from bot.domain.rollout import ACTIVE_STATES, RolloutSpec, RolloutStatus, State
from bot.services.rollouts import RolloutService

PREFIX = "rollout_bot_"
HELD_STATES = (State.PAUSED, State.ROLLED_BACK)


@dataclass(frozen=True)
class Reading:
    """Every rollout's status and gate states at one moment."""

    now: datetime
    statuses: Mapping[str, RolloutStatus]
    gates: Mapping[str, Mapping[str, GateView]]


def held(status: RolloutStatus) -> bool:
    """Cannot move forward until a person acts or a gate is measured again: paused, rolled
    back (held until resumed or restarted), or held by a gate that cannot be measured."""
    if status.state in HELD_STATES:
        return True
    return status.state is State.PROGRESSING and bool(status.held_by)


def families(specs: Mapping[str, RolloutSpec], reading: Reading) -> list[Metric]:
    """The metric families for one reading."""
    rollout = ["rollout", "flag"]

    def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(PREFIX + name, doc, labels=labels)

    percent = gauge("rollout_percent", "Traffic percentage the rollout's flag is at", rollout)
    state = gauge(
        "rollout_state", "The rollout's state: 1 for the current one", [*rollout, "state"]
    )
    tier = gauge("rollout_tier", "The gate tier at the current percentage", [*rollout, "tier"])
    stage_seconds = gauge("rollout_stage_seconds", "Seconds since the current stage began", rollout)
    held_now = gauge(
        "rollout_held", "1 while paused, rolled back or held by an unmeasured gate", rollout
    )
    version = gauge("rollout_version", "Changes made to the rollout so far", rollout)
    gate_value = gauge("gate_value", "The gate's last measured value", ["rollout", "gate"])
    gate_threshold = gauge(
        "gate_threshold", "The gate's threshold at the current tier", ["rollout", "gate"]
    )
    gate_outcome = gauge(
        "gate_outcome",
        "The gate's last outcome: 1 for the current one",
        ["rollout", "gate", "outcome"],
    )
    for name, spec in specs.items():
        status = reading.statuses.get(name, RolloutStatus())
        labels = [name, spec.flag]
        percent.add_metric(labels, status.percent)
        for value in State:
            state.add_metric([*labels, value.value], float(status.state is value))
        current_tier = tier_for(status.percent)
        for each_tier in Tier:
            tier.add_metric([*labels, each_tier.value], float(current_tier is each_tier))
        if status.stage_started_at is not None and status.state in ACTIVE_STATES:
            elapsed = (reading.now - status.stage_started_at).total_seconds()
            stage_seconds.add_metric(labels, max(0.0, elapsed))
        held_now.add_metric(labels, float(held(status)))
        version.add_metric(labels, status.version)
        for gate, view in reading.gates.get(name, {}).items():
            if view.value is not None:
                gate_value.add_metric([name, gate], view.value)
            if view.threshold is not None:
                gate_threshold.add_metric([name, gate], view.threshold)
            for outcome in Outcome:
                gate_outcome.add_metric([name, gate, outcome.value], float(view.outcome is outcome))
    return [
        percent,
        state,
        tier,
        stage_seconds,
        held_now,
        version,
        gate_value,
        gate_threshold,
        gate_outcome,
    ]


class RolloutCollector(Collector):
    def __init__(self, service: RolloutService) -> None:
        self.service = service
        self._reading: Reading | None = None

    async def refresh(self) -> None:
        """Read the rollouts as they are now; the next `collect()` reports this reading."""
        service = self.service
        now = service.clock.now()
        statuses = await service.statuses()
        gates: dict[str, dict[str, GateView]] = {}
        async with service.reader() as session:
            for name, spec in service.specs.items():
                gates[name] = dict(await service.observations(session, spec, now))
        self._reading = Reading(now, statuses, gates)

    def collect(self) -> Iterator[Metric]:
        if self._reading is None:  # registered but never scraped through `/metrics` yet
            return iter(())
        return iter(families(self.service.specs, self._reading))
