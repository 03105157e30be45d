"""The control loop: measure a rollout's gates on their interval, then let `decide` judge.

One timer row, `gates`, is due when the first watched rollout's next measurement is. Each
tick reads every rollout and gate state in one query each (no round trip per rollout),
measures the gates whose interval has passed — one query per gate for all the rollouts
that share it, where the query batches (`gate_measuring`) — then, in one transaction per
chunk of rollouts, writes the new gate states, applies `Evaluate` to each (rollback,
advance, complete or hold-and-page) and, at the end, sets the next tick. A decision made
elsewhere (a start, an advance) makes the tick due at once. `soak:NAME` fires at the end
of a stage's soak, so a rollout without gates advances on time too.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from bot.services.gate_measuring import Due, measure_due, plans_of
from bot.services.incidents import IncidentService
from bot.services.rollouts import BOT, SOAK, RolloutService, status_of
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

GATES = "gates"  # the one timer of the gate tick, and its kind
# Rollouts judged in one transaction: short enough that SQLite's write lock, held while a
# chunk is written, leaves commands waiting well within the busy timeout.
CHUNK = 100


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
        reader: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions = sessions
        self.reader = reader or sessions
        self.specs = specs
        self.rules = rules
        self.plans = plans_of(rules)  # which gates are measured for many rollouts at once
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
            await repo.expedite_timer(GATES, GATES, now)  # the next tick measures it now
        stage = status.stage(spec.plan)
        if status.state is State.PROGRESSING and stage and status.stage_started_at:
            due = status.stage_started_at + stage.soak
            if status.waiting is not None and status.waiting.until is not None:
                due = max(due, status.waiting.until)  # a freeze window: on at its end
            await repo.set_timer(f"{SOAK}:{name}", SOAK, due, {"rollout": name})
        else:
            await repo.cancel_timer(f"{SOAK}:{name}")

    async def follow_config(self) -> None:
        """At every start, by every replica: the gate tick falls when the configured
        intervals put the first rollout's next measurement, and each soak ends when its
        stage's configured soak does (the config may have changed while the bot was down).
        A rollout that gained gates is measured at the next tick, now; a timer already due
        runs as it is. Timers of one tick per rollout (an older bot's) are dropped."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            rows = {row.name: row for row in await repo.rollouts(self.specs)}
            states = _by_rollout(await repo.gate_state_values(None))
            due: datetime | None = None
            for spec in self.specs.values():
                row = rows.get(spec.name)
                if row is None:
                    continue
                status = status_of(row)
                rules = self.rules_for(spec)
                if _watched(status) and rules and self.source is not None:
                    views = self._views(spec, states.get(spec.name, []), row.percent)
                    at = next_tick(rules, views, now)
                    due = at if due is None else min(due, at)
                stage = status.stage(spec.plan)
                if status.state is State.PROGRESSING and stage and status.stage_started_at:
                    await repo.move_timer(
                        f"{SOAK}:{spec.name}", status.stage_started_at + stage.soak, now
                    )
            await repo.drop_timers(GATES, keep=GATES)
            if due is not None and not await repo.ensure_timer(GATES, GATES, due):
                await repo.move_timer(GATES, due, now)

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
        """One tick for every watched rollout: read every row in one query, measure the
        gates due (one query per gate where it batches), then judge and write in chunks of
        CHUNK rollouts, one transaction each, and set the next tick."""
        if self.service is None or self.source is None:
            return
        if timer.key != GATES:  # an older bot's timer of one rollout: the one tick runs now
            async with self.sessions() as session, session.begin():
                await Repository(session).expedite_timer(GATES, GATES, self.clock.now())
            return
        now = self.clock.now()
        async with self.reader() as session:
            repo = Repository(session)
            rows = await repo.rollouts(self.specs)
            states = _by_rollout(await repo.gate_state_values(None))
        percents = {row.name: row.percent for row in rows}
        watched: dict[str, tuple[RolloutSpec, dict[str, GateView]]] = {}
        due: list[Due] = []
        for i, row in enumerate(rows):
            if i and not i % CHUNK:
                await asyncio.sleep(0)  # let commands run between chunks of the reading too
            spec = self.specs[row.name]
            rules = self.rules_for(spec)
            if not rules or not _watched(status_of(row)):
                continue
            views = self._views(spec, states.get(spec.name, []), row.percent)
            watched[spec.name] = (spec, views)
            wanted = to_measure(rules, views, tier_for(max(row.percent, 1)), now)
            if wanted:
                due.append(Due(spec, wanted))
        measured = await measure_due(self.source, self.plans, due)
        # After time the bot did not watch, the metrics' history fills the gap (rare: a
        # restart): asked for those gates alone, all at once.
        gaps = [
            (spec, rule, views.get(rule.name))
            for spec, gates_due in due
            for views in (watched[spec.name][1],)
            for rule in gates_due
            if _stale(views.get(rule.name), now)
        ]
        held = await asyncio.gather(*(
            self._gap_held(
                spec,
                rule,
                tier_for(max(percents[spec.name], 1)),
                previous,
                measured[spec.name, rule.name],
                now,
            )
            for spec, rule, previous in gaps
        ))
        gap_held = {
            (spec.name, rule.name): h for (spec, rule, _), h in zip(gaps, held, strict=True)
        }
        judged = {
            spec.name: [
                Judged(rule, measured[spec.name, rule.name], gap_held.get((spec.name, rule.name)))
                for rule in gates_due
            ]
            for spec, gates_due in due
        }
        names = list(judged)
        decided = resolved = False
        for first in range(0, len(names), CHUNK):
            chunk = names[first : first + CHUNK]
            for _ in range(3):
                try:
                    after = await self._judge_chunk({n: judged[n] for n in chunk})
                except RolloutMoved:
                    continue  # someone acted meanwhile: judge the chunk again on the new status
                break
            else:
                continue
            decided |= after.decided
            resolved |= after.resolved
            for name in chunk:
                if name in after.views:
                    watched[name] = (watched[name][0], after.views[name])
                else:
                    watched.pop(name, None)
            await asyncio.sleep(0)  # let commands in between chunks
        if decided:
            self.service.notify()
        if resolved and self.incidents is not None:
            self.incidents.notify()
        upcoming = [
            next_tick(self.rules_for(spec), views, now) for spec, views in watched.values()
        ]
        async with self.sessions() as session, session.begin():
            await Repository(session).reschedule_timer(
                GATES, timer.token, min(upcoming) if upcoming else None, GATES
            )
        # reschedule_timer moved the token on, so the loop's finish is a no-op.

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

    async def _judge_chunk(self, measured: Mapping[str, list[Judged]]) -> Judgement:
        """In one transaction, for these rollouts: write their measurements (one UPDATE
        and one INSERT for all of them), then decide each, and resolve the incidents of
        gates that could not be measured and now are green. Returns the gates of the
        rollouts still watched, and whether anything was decided or resolved."""
        assert self.service is not None
        now = self.clock.now()
        judgement = Judgement({}, decided=False, resolved=False)
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            rows = {row.name: row for row in await repo.rollouts(measured)}
            read = await repo.gate_state_values(measured)
            states = _by_rollout(read)
            known = {(r.rollout, r.gate) for r in read}
            freeze = await repo.freeze()
            unmeasured = (
                await self.incidents.unmeasured_rollouts(session) if self.incidents else set()
            )
            judged_now: list[tuple[RolloutSpec, RolloutStatus, dict[str, GateView]]] = []
            changed: list[dict[str, Any]] = []
            new: list[dict[str, Any]] = []
            for name, judged in measured.items():
                spec, row = self.specs[name], rows.get(name)
                if row is None or not _watched(status_of(row)):
                    continue  # rolled back or completed meanwhile
                status = status_of(row)
                tier = tier_for(status.percent)
                views = self._views(spec, states.get(name, []), status.percent)
                for rule, measurement, gap_held in judged:
                    previous = views.get(rule.name)
                    view = observe(previous, rule, tier, measurement, spec.flag, now, gap_held)
                    views[rule.name] = view
                    values = {"rollout": name, "gate": rule.name, **_columns(view)}
                    (changed if (name, rule.name) in known else new).append(values)
                judged_now.append((spec, status, views))
            # Written before any decision: a decision's own writes (a page marks its gates
            # escalated) then land on top of them.
            await repo.write_gate_states(changed, new)
            for spec, status, views in judged_now:
                outcome = await self.service.decide_in(
                    session, spec, Evaluate(), BOT, now, observations=views, freeze=freeze
                )
                after = outcome.decision.status if outcome.decision else status
                judgement.decided |= outcome.decision is not None
                if _watched(after):
                    judgement.views[spec.name] = views
                if self.incidents is not None and spec.name in unmeasured:
                    green = [
                        n for n, v in views.items() if v.outcome is Outcome.PASS and v.fresh(now)
                    ]
                    found = await self.incidents.resolve_measured(session, spec.name, green, now)
                    judgement.resolved |= bool(found)
        return judgement


@dataclass
class Judgement:
    """What judging a chunk of rollouts left: the gates of those still watched."""

    views: dict[str, dict[str, GateView]]
    decided: bool
    resolved: bool


class Judged(NamedTuple):
    """A gate measured in a tick, and whether its history filled the gap before it."""

    rule: GateRule
    measurement: Measurement
    gap_held: bool | None


def _by_rollout(rows: Sequence[Any]) -> dict[str, list[Any]]:
    """Gate states (rows or their values) by rollout."""
    found: dict[str, list[Any]] = {}
    for row in rows:
        found.setdefault(row.rollout, []).append(row)
    return found


def _stale(view: GateView | None, now: datetime) -> bool:
    """Measured before, but not within its freshness: the bot did not watch meanwhile."""
    return view is not None and view.measured_at is not None and not view.fresh(now)


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
