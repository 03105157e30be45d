"""Checkpoint summaries in each rollout's thread, and the daily summary in the channel.

The schedule is timers in the database: `checkpoint:NAME` follows the cadence after each
change of percentage; `daily` fires at the configured time in the configured timezone.
A handler posts and sets its next timer in the same transaction that finishes the
current one, so a restarted bot never posts a checkpoint twice. A bot that was down posts
one catch-up checkpoint when it comes back (the next one is counted from then), not a
burst of the missed ones.

What the summaries show comes from the database (status, gate states, events) and from
the metrics source's range queries (the worst value since the last checkpoint, the chart);
a part that cannot be gathered is named in the message instead.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.assess import GateRule
from bot.domain.cadence import Rule, next_checkpoint
from bot.domain.gates import Outcome
from bot.domain.plans import tier_for
from bot.domain.rollout import (
    ACTIVE_STATES,
    Decision,
    RolloutSpec,
    RolloutStatus,
    State,
    soak_ends_at,
)
from bot.prometheus import Series, SeriesSource
from bot.render.charts import ChartData, GateSeries, alt_text, render_chart
from bot.render.shadow import marked
from bot.render.summaries import (
    ChangeLine,
    CheckpointView,
    GateLine,
    IncidentLine,
    checkpoint_message,
    daily_summary_message,
)
from bot.services.rollouts import freeze_of, status_of
from storage.incidents import IncidentLogRow, Incidents
from storage.models import EventRow
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

RESPONSES = ("acknowledged", "resolved", "silenced")  # shown under "what changed"
CHECKPOINT = "checkpoint"
DAILY = "daily"
MAX_CHARTS = 10
CHART_POINTS = 240

@dataclass(frozen=True)
class Chart:
    """A rollout's chart for the daily summary: the PNG, and what it shows in words."""

    name: str
    png: bytes
    alt_txt: str


GateViews = Callable[[AsyncSession, RolloutSpec, datetime], Awaitable[Mapping[str, Any]]]
OpenIncidents = Callable[[], Awaitable[Sequence[Any]]]


class CheckpointService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        specs: Mapping[str, RolloutSpec],
        clock: Clock,
        *,
        channel: str,
        cadence: Callable[[str], tuple[Rule, ...]],
        rules: Mapping[str, GateRule],
        gate_views: GateViews,
        series: SeriesSource | None = None,
        incidents: OpenIncidents | None = None,
        timezone: str = "UTC",
        daily_at: time = time(9, 0),
    ) -> None:
        self.sessions = sessions
        self.specs = specs
        self.clock = clock
        self.channel = channel
        self.cadence = cadence
        self.rules = rules
        self.gate_views = gate_views
        self.series = series
        self.incidents = incidents
        self.zone = ZoneInfo(timezone)
        self.daily_at = daily_at
        self.on_change: list[Callable[[], None]] = []
        # Entered while the daily summary is gathered and drawn: the demo's clock stands
        # still in it, so half a second of drawing does not show as an hour of its time.
        self.rendering: Callable[[], AbstractContextManager[None]] = nullcontext

    # --- the schedule -------------------------------------------------------------------

    async def on_decision(
        self, session: AsyncSession, spec: RolloutSpec, decision: Decision, now: datetime
    ) -> None:
        """After each decision, in its transaction: a change of percentage restarts the
        cadence; a rollout no longer active has no more checkpoints."""
        repo = Repository(session)
        key = f"{CHECKPOINT}:{spec.name}"
        status, change = decision.status, decision.change
        if status.state not in ACTIVE_STATES:
            await repo.cancel_timer(key)
            return
        if change.from_percent == change.to_percent:
            return
        existing = await repo.timer(key)
        last = existing.payload.get("last") if existing is not None else None
        due = next_checkpoint(now, now, self.cadence(spec.plan.name))
        if due is not None:
            payload = {"rollout": spec.name, "changed_at": now.isoformat(),
                       "last": last or now.isoformat()}
            await repo.set_timer(key, CHECKPOINT, due, payload)

    async def ensure_daily(self) -> None:
        """At every start, by every replica: the daily summary's timer is set for the next
        `daily_summary` time of the config. One set for another time (the config changed
        while the bot was down) moves to it; one already due still posts, late, at once."""
        now = self.clock.now()
        due = self.next_daily(now)
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            if not await repo.ensure_timer(DAILY, DAILY, due, {}):
                await repo.move_timer(DAILY, due, now)

    async def follow_cadence(self) -> None:
        """At every start: each checkpoint timer falls where the configured cadence puts it
        (the cadence may have changed while the bot was down), counted from the change of
        percentage and the last checkpoint, as if the bot had run with it all along. One
        already due posts at once, as a catch-up."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            for spec in self.specs.values():
                key = f"{CHECKPOINT}:{spec.name}"
                timer = await repo.timer(key)
                if timer is None or timer.due_at <= now or "changed_at" not in timer.payload:
                    continue
                changed_at = datetime.fromisoformat(timer.payload["changed_at"])
                last = datetime.fromisoformat(timer.payload.get("last") or changed_at.isoformat())
                due = next_checkpoint(
                    changed_at, max(last, changed_at), self.cadence(spec.plan.name)
                )
                if due is None:
                    await repo.cancel_timer(key)  # the new cadence has ended
                else:
                    await repo.move_timer(key, due, now)

    def next_daily(self, after: datetime) -> datetime:
        local = after.astimezone(self.zone)
        moment = datetime.combine(local.date(), self.daily_at, self.zone)
        if moment <= local:
            moment = datetime.combine(local.date() + timedelta(days=1), self.daily_at, self.zone)
        return moment.astimezone(after.tzinfo)

    # --- a checkpoint -------------------------------------------------------------------

    async def on_checkpoint(self, timer: DueTimer) -> None:
        spec = self.specs.get(timer.payload.get("rollout", ""))
        if spec is None:
            return
        now = self.clock.now()
        last = datetime.fromisoformat(timer.payload.get("last") or now.isoformat())
        changed_at = datetime.fromisoformat(timer.payload["changed_at"])
        view = await self.view(spec, since=last, now=now)
        if view is None or view.status.state not in ACTIVE_STATES:
            return
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            if not await repo.finish_timer(timer.key, timer.token):
                return  # the rollout changed meanwhile: its new cadence takes over
            message = marked(checkpoint_message(view), view.status)
            repo.enqueue(self.channel, "thread_reply", message, now, rollout=spec.name)
            due = next_checkpoint(changed_at, now, self.cadence(spec.plan.name))
            if due is not None:
                await repo.set_timer(timer.key, CHECKPOINT, due, {
                    **timer.payload, "last": now.isoformat(),
                })
        self._notify()

    async def view(
        self, spec: RolloutSpec, *, since: datetime, now: datetime
    ) -> CheckpointView | None:
        """Everything a summary shows of one rollout, gathered now."""
        async with self.sessions() as session:
            repo = Repository(session)
            row = await repo.rollout(spec.name)
            if row is None:
                return None
            status = status_of(row)
            events = await repo.events_since(spec.name, since)
            responses = await Incidents(session).responses_since(spec.name, since, RESPONSES)
            gate_views = await self.gate_views(session, spec, now)
            freeze = freeze_of(await repo.freeze())
        missing: list[str] = []
        worst = await self._worst(spec, status, since, now, missing)
        gates = [self._gate_line(spec, status, name, gate_views.get(name), worst.get(name))
                 for name in spec.gates]
        incidents = await self._incidents(spec, missing)
        changes = sorted(
            [*map(_change, events), *map(_response, responses)], key=lambda c: c.at
        )
        soak_ends = soak_ends_at(spec, status, gate_views)
        return CheckpointView(
            spec, status, now, gates, incidents, changes, tuple(missing), freeze, soak_ends
        )

    def _gate_line(
        self, spec: RolloutSpec, status: RolloutStatus, name: str, view: Any,
        worst: float | None,
    ) -> GateLine:
        rule = self.rules.get(name)
        fail_above = rule is None or rule.fail_above is not None
        if view is None:
            threshold = _threshold(rule, status.percent)
            return GateLine(name, Outcome.NO_DATA, None, threshold, worst, fail_above,
                            "not measured yet")
        return GateLine(name, view.outcome, view.value, view.threshold, worst, fail_above,
                        view.detail)

    async def _worst(
        self, spec: RolloutSpec, status: RolloutStatus, since: datetime, now: datetime,
        missing: list[str],
    ) -> dict[str, float]:
        if self.series is None or not spec.gates or now <= since:
            return {}
        step = max((now - since) / CHART_POINTS, timedelta(seconds=15))
        worst: dict[str, float] = {}
        for name in spec.gates:
            rule = self.rules.get(name)
            if rule is None:
                continue
            series = await self.series.series(rule.query_for(spec.flag), since, now, step)
            if series.error:
                missing.append(f"worst {name} since the last checkpoint: {series.error}")
            elif series.points:
                values = [v for _, v in series.points]
                worst[name] = max(values) if rule.fail_above is not None else min(values)
        return worst

    async def _incidents(self, spec: RolloutSpec, missing: list[str]) -> list[IncidentLine]:
        if self.incidents is None:
            return []
        try:
            live = await self.incidents()
        except Exception as exc:  # the summary still posts, saying what is missing
            missing.append(f"incidents: {type(exc).__name__}: {exc}")
            return []
        return [
            IncidentLine(f"INC-{i.id}", i.summary, i.acked_by)
            for i in live if i.rollout == spec.name
        ]

    # --- the daily summary --------------------------------------------------------------

    async def on_daily(self, timer: DueTimer) -> None:
        now = self.clock.now()
        with self.rendering():
            message, charts = await self.daily_summary(now)
        day = now.astimezone(self.zone).date().isoformat()
        ref = f"daily:{day}"
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            if not await repo.finish_timer(timer.key, timer.token):
                return
            repo.enqueue(self.channel, "message", {**message, "ref": ref}, now)
            for chart in charts:
                repo.enqueue(self.channel, "file", {
                    "thread_ref": ref,
                    "filename": f"{chart.name}-{day}.png",
                    "title": f"{chart.name} · {day}",
                    "comment": f"{chart.name}: traffic and gates over the last 24 h",
                    "alt_txt": chart.alt_txt,
                    "content_b64": base64.b64encode(chart.png).decode(),
                }, now)
            await repo.set_timer(DAILY, DAILY, self.next_daily(now), {})
        self._notify()

    async def daily_summary(self, now: datetime) -> tuple[dict[str, Any], list[Chart]]:
        """The summary message of every active rollout, and of every rollout rolled back
        in the last 24 h (the day's news, and a rollout held until someone decides), with a
        chart for each (at most MAX_CHARTS), rendered off the event loop."""
        day_ago = now - timedelta(hours=24)
        views = []
        for spec in self.specs.values():
            view = await self.view(spec, since=day_ago, now=now)
            if view is None:
                continue
            state = view.status.state
            rolled_back_today = state is State.ROLLED_BACK and any(
                c.verb == "rollback" and not c.incident for c in view.changes
            )
            if state in ACTIVE_STATES or rolled_back_today:
                views.append(view)
        local_now = now.astimezone(self.zone)
        message = daily_summary_message(views, local_now, charted=min(len(views), MAX_CHARTS))
        charts = []
        for view in views[:MAX_CHARTS]:
            data = await self.chart_data(view.spec, day_ago, now)
            png = await asyncio.to_thread(render_chart, data)
            charts.append(Chart(view.spec.name, png, alt_text(data)))
        return message, charts

    async def chart_data(self, spec: RolloutSpec, start: datetime, end: datetime) -> ChartData:
        async with self.sessions() as session:
            repo = Repository(session)
            before = await repo.events(spec.name, limit=200)
        # The whole window the title names, earlier runs of the rollout included (a
        # rollback this morning, then a new start): the level before it is where it began.
        level = 0
        percent: list[tuple[datetime, int]] = []
        markers: list[tuple[datetime, str]] = []
        for event in before:
            if event.at < start:
                level = event.to_percent
                continue
            if event.at <= end:
                percent.append((event.at, event.to_percent))
                markers.append((event.at, event.verb))
        percent.insert(0, (start, level))
        gates, missing = [], []
        step = max((end - start) / CHART_POINTS, timedelta(seconds=15))
        for name in spec.gates:
            rule = self.rules.get(name)
            if rule is None:
                continue
            series: Series = (
                await self.series.series(rule.query_for(spec.flag), start, end, step)
                if self.series is not None else Series(error="no metrics source configured")
            )
            if series.error:
                missing.append(f"{name}: {series.error}")
            gates.append(GateSeries(name, series.points, threshold_steps(rule, percent),
                                    rule.fail_above is not None))
        note = "; ".join(missing)
        if missing and not any(g.points for g in gates):
            gates = []
        hours = round((end - start).total_seconds() / 3600)
        return ChartData(f"{spec.name} · {spec.flag} · last {hours} h", start, end, percent,
                         gates, markers, note, self.zone)

    def _notify(self) -> None:
        for listener in self.on_change:
            listener()


def threshold_steps(
    rule: GateRule | None, percent: Sequence[tuple[datetime, int]]
) -> list[tuple[datetime, float | None]]:
    """The rule's threshold over time, from the percentage's steps (each change, in order):
    a step where the percentage crossed into a tier with another threshold. Empty when the
    rule has no threshold at all."""
    steps: list[tuple[datetime, float | None]] = []
    for when, level in percent:
        value = _threshold(rule, level)
        if steps and steps[-1][0] == when:
            steps.pop()  # two changes at the same moment: the later one holds
        if not steps or steps[-1][1] != value:
            steps.append((when, value))
    return steps if any(value is not None for _, value in steps) else []


def _threshold(rule: GateRule | None, percent: int) -> float | None:
    return None if rule is None else rule.threshold_at(tier_for(max(percent, 1)))


def _change(event: EventRow) -> ChangeLine:
    return ChangeLine(event.at, event.actor, event.verb, event.from_percent, event.to_percent,
                      event.reason)


def _response(log_row: IncidentLogRow) -> ChangeLine:
    return ChangeLine(log_row.at, log_row.actor, log_row.verb,
                      incident=f"INC-{log_row.incident_id}")
