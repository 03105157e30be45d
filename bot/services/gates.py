"""The control loop: measure a rollout's gates on their interval, then let `decide` judge.

Each active rollout with gates has one timer row, `gates:NAME`. When it is due, the
service measures the gates whose interval has passed (all at once, off the event loop),
and in ONE transaction writes the new gate states, applies `Evaluate` (rollback, advance,
complete or hold-and-page) and sets the next tick. `soak:NAME` fires at the end of a
stage's soak, so a rollout without gates advances on time too.

Why gate states are persisted rather than re-read from Prometheus for the whole window:
the bot's own view (outcome, since when, last value) survives a restart with any metrics
source — a simulated one included — and it records outcomes Prometheus cannot report
about itself (it cannot say when it was unreachable). A bot restarted in the middle of
a breach reads `since` back and rolls back on time; see `assess.next_view` for how a gap
in watching is treated: never as green on the bot's word alone, but a range query over the
gap (`history_holds`) that shows the gate green throughout keeps a soak going across a
restart, and one that shows it red throughout keeps a breach's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.assess import (
    GateRule,
    Measurement,
    assess,
    history_holds,
    next_tick,
    observe,
    to_measure,
)
from bot.domain.gates import GateView, Outcome
from bot.domain.plans import Tier, tier_for
from bot.domain.rollout import ACTIVE_STATES, Decision, Evaluate, RolloutSpec, RolloutStatus, State
from bot.errors import RolloutMoved
from bot.prometheus import MetricsSource, SeriesSource
from bot.services.incidents import IncidentService
from bot.services.rollouts import BOT, SOAK, RolloutService, status_of
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

GATES = "gates"


class GateService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        specs: Mapping[str, RolloutSpec],
        rules: Mapping[str, GateRule],
        source: MetricsSource | None,
        clock: Clock,
        *,
        incidents: IncidentService | None = None,
    ) -> None:
        self.sessions = sessions
        self.specs = specs
        self.rules = rules
        self.source = source
        self.clock = clock
        self.incidents = incidents
        self.service: RolloutService | None = None  # `bind` sets it, once, in the wiring

    def bind(self, service: RolloutService) -> None:
        """The rollout service the gate tick decides through (it is built with this
        service's `observations`, so it cannot be a constructor argument)."""
        assert self.service is None, "bound twice"
        self.service = service

    def rules_for(self, spec: RolloutSpec) -> list[GateRule]:
        return [self.rules[g] for g in spec.gates if g in self.rules]

    # --- what decide sees -------------------------------------------------------------

    async def observations(
        self, session: AsyncSession, spec: RolloutSpec, now: datetime
    ) -> dict[str, GateView]:
        repo = Repository(session)
        row = await repo.rollout(spec.name)
        percent = row.percent if row is not None else 0
        rows = await repo.gate_states([spec.name])
        return self._views(spec, rows, percent)

    def _views(self, spec: RolloutSpec, rows: Any, percent: int) -> dict[str, GateView]:
        tier = tier_for(max(percent, 1))
        views = {}
        for row in rows:
            rule = self.rules.get(row.gate)
            if rule is None or row.gate not in spec.gates:
                continue
            views[row.gate] = GateView(
                name=row.gate,
                outcome=Outcome(row.outcome),
                since=row.since,
                value=row.value,
                threshold=row.threshold,
                window=rule.window_at(tier),
                query=rule.query_for(spec.flag),
                detail=row.detail,
                measured_at=row.measured_at,
                grace=rule.no_data_grace,
                escalated=row.escalated,
                interval=rule.interval,
            )
        return views

    # --- after every decision, inside its transaction --------------------------------

    async def on_decision(
        self, session: AsyncSession, spec: RolloutSpec, decision: Decision, now: datetime
    ) -> None:
        repo = Repository(session)
        status = decision.status
        name = spec.name
        if decision.change.verb == "start":
            await repo.clear_gate_states(name)  # a new run judges its gates afresh
        if decision.change.verb == "hold":
            for view in decision.gates:
                await repo.save_gate_state(name, view.name, {"escalated": True})
                if self.incidents is not None:  # the page's incident is about this gate
                    await self.incidents.note_gate(
                        session, name, view.outcome.value, view.name, now
                    )
        if _watched(status) and self.rules_for(spec) and self.source is not None:
            await repo.set_timer(f"{GATES}:{name}", GATES, now, {"rollout": name})
        stage = status.stage(spec.plan)
        if status.state is State.PROGRESSING and stage and status.stage_started_at:
            due = status.stage_started_at + stage.soak
            if status.waiting is not None and status.waiting.until is not None:
                due = max(due, status.waiting.until)  # a freeze window: on at its end
            await repo.set_timer(f"{SOAK}:{name}", SOAK, due, {"rollout": name})
        else:
            await repo.cancel_timer(f"{SOAK}:{name}")

    async def follow_config(self) -> None:
        """At every start, by every replica: each watched rollout's gate tick falls when the
        configured intervals put it, and each soak ends when its stage's configured soak
        does (the config may have changed while the bot was down). A rollout that gained
        gates gets its first tick now; a timer already due runs as it is."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            for spec in self.specs.values():
                row = await repo.rollout(spec.name)
                if row is None:
                    continue
                status = status_of(row)
                rules = self.rules_for(spec)
                if _watched(status) and rules and self.source is not None:
                    views = self._views(spec, await repo.gate_states([spec.name]), row.percent)
                    key, due = f"{GATES}:{spec.name}", next_tick(rules, views, now)
                    if not await repo.ensure_timer(key, GATES, due, {"rollout": spec.name}):
                        await repo.move_timer(key, due, now)
                stage = status.stage(spec.plan)
                if status.state is State.PROGRESSING and stage and status.stage_started_at:
                    await repo.move_timer(
                        f"{SOAK}:{spec.name}", status.stage_started_at + stage.soak, now
                    )

    # --- timers -----------------------------------------------------------------------

    async def soak_ended(self, timer: DueTimer) -> None:
        spec = self.specs.get(timer.payload.get("rollout", ""))
        if spec is None or self.service is None:
            return
        for _ in range(3):
            try:
                async with self.sessions() as session, session.begin():
                    outcome = await self.service.decide_in(
                        session, spec, Evaluate(), BOT, self.clock.now()
                    )
                    await Repository(session).finish_timer(timer.key, timer.token)
            except RolloutMoved:
                continue
            if outcome.decision is not None:
                self.service.notify()
            return

    async def tick(self, timer: DueTimer) -> None:
        """Measure the due gates of one rollout, then evaluate it, in one transaction."""
        spec = self.specs.get(timer.payload.get("rollout", ""))
        if spec is None or self.service is None or self.source is None:
            return
        rules = self.rules_for(spec)
        now = self.clock.now()
        async with self.sessions() as session:
            repo = Repository(session)
            row = await repo.rollout(spec.name)
            if row is None or not _watched(status_of(row)):
                return  # rolled back, completed or not started: the loop drops the timer
            views = self._views(spec, await repo.gate_states([spec.name]), row.percent)
        tier = tier_for(max(row.percent, 1))
        due = to_measure(rules, views, tier, now)
        source = self.source
        measured = await asyncio.gather(*(source.measure(r.query_for(spec.flag)) for r in due))
        held = await asyncio.gather(*(
            self._gap_held(spec, rule, tier, views.get(rule.name), measurement, now)
            for rule, measurement in zip(due, measured, strict=True)
        ))
        judged = [
            Judged(rule, measurement, gap_held)
            for rule, measurement, gap_held in zip(due, measured, held, strict=True)
        ]
        for _ in range(3):
            try:
                decision, resolved = await self._judge(spec, rules, judged)
            except RolloutMoved:
                continue  # someone acted meanwhile: judge again on the new status
            if decision is not None:
                self.service.notify()
            if resolved and self.incidents is not None:
                self.incidents.notify()
            break
        # _judge set the next tick (a new token), so the loop's finish is a no-op.

    async def _gap_held(
        self,
        spec: RolloutSpec,
        rule: GateRule,
        tier: Tier,
        previous: GateView | None,
        measurement: Measurement,
        now: datetime,
    ) -> bool | None:
        """After time the bot did not watch: whether the metrics' own history shows the
        gate's outcome held through it (a restart then neither restarts a green soak nor
        resets a breach), or None when there is no gap or no history to ask."""
        if previous is None or previous.measured_at is None or previous.fresh(now):
            return None
        if not isinstance(self.source, SeriesSource):
            return None
        if assess(rule, tier, measurement).outcome is not previous.outcome:
            return None  # the outcome changed: its time starts now whatever happened
        start = previous.measured_at
        series = await self.source.series(rule.query_for(spec.flag), start, now, rule.interval)
        if series.error or series.series_count > 1:
            return None  # several series: one history line cannot speak for the worst
        return history_holds(rule, tier, previous.outcome, series.points, start, now)

    async def _judge(
        self,
        spec: RolloutSpec,
        rules: list[GateRule],
        measured: list[Judged],
    ) -> tuple[Decision | None, list[int]]:
        """Write the measurements, decide, set the next tick, and resolve the incidents of
        gates that could not be measured and now are green. Returns the decision and the
        incidents resolved."""
        assert self.service is not None
        now = self.clock.now()
        key = f"{GATES}:{spec.name}"
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            row = await repo.rollout(spec.name)
            assert row is not None
            status = status_of(row)
            if not _watched(status):
                await repo.cancel_timer(key)
                return None, []
            tier = tier_for(status.percent)
            views = self._views(spec, await repo.gate_states([spec.name]), status.percent)
            for rule, measurement, gap_held in measured:
                previous = views.get(rule.name)
                view = observe(previous, rule, tier, measurement, spec.flag, now, gap_held)
                views[rule.name] = view
                await repo.save_gate_state(spec.name, rule.name, _columns(view))
            outcome = await self.service.decide_in(session, spec, Evaluate(), BOT, now)
            after = outcome.decision.status if outcome.decision else status
            if _watched(after):
                await repo.set_timer(
                    key, GATES, next_tick(rules, views, now), {"rollout": spec.name}
                )
            else:
                await repo.cancel_timer(key)
            resolved: list[int] = []
            if self.incidents is not None and measured:
                green = [n for n, v in views.items() if v.outcome is Outcome.PASS and v.fresh(now)]
                resolved = await self.incidents.resolve_measured(session, spec.name, green, now)
            return outcome.decision, resolved


class Judged(NamedTuple):
    """A gate measured in a tick, and whether its history filled the gap before it."""

    rule: GateRule
    measurement: Measurement
    gap_held: bool | None


def _watched(status: RolloutStatus) -> bool:
    """Gates are measured while traffic is exposed: running or paused, above 0 %."""
    return status.state in ACTIVE_STATES and status.percent > 0


def _columns(view: GateView) -> dict[str, Any]:
    return {
        "outcome": view.outcome.value,
        "since": view.since,
        "measured_at": view.measured_at,
        "value": view.value,
        "threshold": view.threshold,
        "detail": view.detail[:2000],
        "escalated": view.escalated,
    }
