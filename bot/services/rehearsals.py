"""Rehearsals: read a rollout's gates over a past period from Prometheus, replay them
through the live rules (`bot.domain.rehearsal`), and answer.

From Slack a rehearsal answers at once ("rehearsing 7 days of 3 gates…") and runs in the
background, its pure part in a worker thread so the event loop keeps answering other
commands; the result goes to the person who asked (the command's `response_url`, else an
ephemeral message), with a button that posts it, and its chart, in the rollout's thread.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.config import Config
from bot.domain.assess import GateRule, Measurement, assess
from bot.domain.plans import BUILTIN_PLANS, Plan, Tier
from bot.domain.rehearsal import History, Rehearsal, rehearse
from bot.domain.rehearsal_stats import GateStats, gate_stats
from bot.domain.rollout import RolloutSpec
from bot.prometheus_history import PrometheusHistory
from bot.render.blocks import context, mention
from bot.render.charts import ChartData, alt_text, render_chart
from bot.render.rehearsal_blocks import chart_data, rehearsal_message, report_lines
from bot.services.responses import KIND as RESPONSE
from bot.services.rollouts import RolloutService
from storage.repository import Repository

log = logging.getLogger(__name__)

DEFAULT_OVER = timedelta(days=7)
LONGEST = timedelta(days=31)  # a month at a 30 s interval is ~90,000 ticks


class HistorySource(Protocol):
    async def histories(
        self, rules: list[GateRule], flag: str, start: datetime, end: datetime
    ) -> list[History]: ...

    async def retention(self) -> str: ...


@dataclass(frozen=True)
class Ask:
    """What to rehearse: a rollout, over how long, with which plan, from when (a time in
    the config's timezone, naive; None: the period ends now)."""

    name: str
    over: timedelta = DEFAULT_OVER
    plan: str | None = None
    start: datetime | None = None


@dataclass(frozen=True)
class Reach:
    """Where the asker is answered: the command's response_url, else an ephemeral message
    in `channel`."""

    user: str
    channel: str
    response_url: str = ""


@dataclass(frozen=True)
class Answer:
    rehearsal: Rehearsal
    stats: tuple[GateStats, ...]
    message: dict[str, Any]
    lines: tuple[str, ...]
    chart: ChartData


class Rehearsals:
    def __init__(
        self,
        specs: Mapping[str, RolloutSpec],
        rules: Mapping[str, GateRule],
        plans: Mapping[str, Plan],
        source: HistorySource | None,
        now: Callable[[], datetime],
        timezone: tzinfo = UTC,
        *,
        concurrency: int = 1,
    ) -> None:
        self.specs = specs
        self.rules = rules
        self.plans = plans
        self.source = source
        self.now = now
        self.timezone = timezone
        self._slots = asyncio.Semaphore(concurrency)  # rehearsals share the CPU one by one
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what was asked ---------------------------------------------------------------

    def problem(self, ask: Ask) -> str:
        """Why this rehearsal cannot run, in words; empty when it can."""
        spec = self.specs.get(ask.name)
        if spec is None:
            return f"No rollout is named `{ask.name}`."
        if ask.plan is not None and ask.plan not in self.plans:
            known = ", ".join(f"`{p}`" for p in sorted(self.plans))
            return f"No plan is named `{ask.plan}`. Known plans: {known}."
        if not self.rules_of(spec):
            return f"{ask.name} has no gates to rehearse: add some under its `gates:`."
        if self.source is None:
            return "Rehearsals read Prometheus, and none is configured (`prometheus.url`)."
        if ask.over > LONGEST:
            return f"A rehearsal covers at most {LONGEST.days} days (asked: {ask.over})."
        if ask.over < min(r.interval for r in self.rules_of(spec)):
            return "A rehearsal must cover at least one gate interval."
        start, _ = self.period(ask)
        if start >= self.now():
            return "That period has not begun yet: `from` must be in the past."
        return ""

    def rules_of(self, spec: RolloutSpec) -> list[GateRule]:
        return [self.rules[g] for g in spec.gates if g in self.rules]

    def period(self, ask: Ask) -> tuple[datetime, datetime]:
        """[start, end], on the gates' interval grid, ending now at the latest."""
        spec = self.specs[ask.name]
        step = min((r.interval for r in self.rules_of(spec)), default=timedelta(seconds=30))
        now = self.now()
        if ask.start is None:
            end = now
            start = end - ask.over
        else:
            local = ask.start
            if local.tzinfo is None:
                local = local.replace(tzinfo=self.timezone)
            start = local.astimezone(UTC)
            end = min(start + ask.over, now)
        return _floor(start, step), _floor(end, step)

    # --- rehearsing -------------------------------------------------------------------

    async def rehearse(self, ask: Ask, *, with_button: bool = True) -> Answer:
        assert self.source is not None
        spec = self.specs[ask.name]
        rules = self.rules_of(spec)
        start, end = self.period(ask)
        plan = self.plans[ask.plan] if ask.plan else spec.plan
        async with self._slots:
            histories, retention = await asyncio.gather(
                self.source.histories(rules, spec.flag, start, end), self.source.retention()
            )
            # The replay is pure and CPU-bound: a worker thread, so the event loop (and
            # every other command) carries on meanwhile.
            return await asyncio.to_thread(
                self._answer, spec, plan, histories, start, end, retention, with_button
            )

    def _answer(
        self,
        spec: RolloutSpec,
        plan: Plan,
        histories: list[History],
        start: datetime,
        end: datetime,
        retention: str,
        with_button: bool,
    ) -> Answer:
        result = rehearse(spec, histories, start, end, plan)
        stats = tuple(gate_stats(h, start, end) for h in histories)
        intervals = {h.rule.name: h.rule.interval for h in histories}
        zone = self.timezone
        message = rehearsal_message(
            result, stats, zone, intervals=intervals, retention=retention, with_button=with_button
        )
        lines = report_lines(result, stats, zone, intervals=intervals, retention=retention)
        points = {h.rule.name: worst_points(h) for h in histories}
        above = {h.rule.name: h.rule.fail_above is not None for h in histories}
        return Answer(result, stats, message, tuple(lines), chart_data(result, points, above, zone))

    # --- from Slack ---------------------------------------------------------------------

    def in_background(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` without the caller waiting; its failure is logged, never lost."""

        async def run() -> None:
            try:
                await work()
            except Exception:
                log.exception("a rehearsal failed")

        task = asyncio.create_task(run(), name="rehearsal")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, service: RolloutService, ask: Ask, reach: Reach) -> None:
        """Rehearse, then show the result to the asker alone."""
        try:
            answer = await self.rehearse(ask)
            message = answer.message
        except Exception as exc:
            log.exception("rehearsal of %s failed", ask.name)
            text = f"The rehearsal of {ask.name} failed: {type(exc).__name__}. It is in the log."
            message = {"text": text}
        async with service.sessions() as session, session.begin():
            repo, now = Repository(session), service.clock.now()
            if reach.response_url:
                payload = {"url": reach.response_url, "user": reach.user, **message}
                repo.enqueue(f"response:{reach.user}", RESPONSE, payload, now)
            else:
                repo.enqueue(reach.channel, "ephemeral", {"user": reach.user, **message}, now)
        service.notify()

    async def post_in_thread(self, service: RolloutService, ask: Ask, by: str) -> None:
        """The rehearsal (run again over the same period: the same answer) in the rollout's
        thread, for everyone, with its chart."""
        answer = await self.rehearse(ask, with_button=False)
        png = await asyncio.to_thread(render_chart, answer.chart)
        message = dict(answer.message)
        message["text"] = f"{mention(by)} posted a rehearsal.\n" + message["text"]
        message["blocks"] = [
            context(f"{mention(by)} posted a rehearsal"),
            *message["blocks"],
        ]
        start = answer.rehearsal.start.strftime("%Y%m%d")
        async with service.sessions() as session, session.begin():
            repo, now = Repository(session), service.clock.now()
            repo.enqueue(service.channel, "thread_reply", message, now, rollout=ask.name)
            repo.enqueue(
                service.channel,
                "file",
                {
                    "filename": f"{ask.name}-rehearsal-{start}.png",
                    "title": f"{ask.name} · rehearsal",
                    "comment": "",
                    "alt_txt": alt_text(answer.chart),
                    "content_b64": base64.b64encode(png).decode(),
                },
                now,
                rollout=ask.name,
            )
        service.notify()


def worst_points(history: History) -> list[tuple[datetime, float]]:
    """One value per sample for the chart: the worst series, as `assess` judges it."""
    rule = history.rule
    points = []
    for at, values in zip(history.times, history.values, strict=True):
        value = assess(rule, Tier.FINAL, Measurement(values)).value
        if value is not None:
            points.append((at, value))
    return points


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = max(1, int(step.total_seconds()))
    stamp = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(stamp, UTC)


def plans_of(config: Config) -> dict[str, Plan]:
    """Every plan a rehearsal may use: the built-in ones and the config's."""
    return {**BUILTIN_PLANS, **{name: config.plan(name) for name in config.plans}}


def rehearsals_for(config: Config, prometheus_url: str, now: Callable[[], datetime]) -> Rehearsals:
    """The rehearsals of a config's rollouts, reading the Prometheus at `prometheus_url`."""
    source = PrometheusHistory(prometheus_url) if prometheus_url else None
    return Rehearsals(
        config.specs(),
        config.gate_rules(),
        plans_of(config),
        source,
        now,
        ZoneInfo(config.timezone),
    )
