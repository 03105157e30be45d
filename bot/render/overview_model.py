"""The overview of every rollout that the dashboard and the App Home show.

Pure: `build_overview` turns specs, statuses and events into a view-model. The renderers
(`bot.render.dashboard_page` for HTML, `bot.render.app_home` for Block Kit) take only the
view-model;
`bot.services.overview_reader.OverviewSource` reads what it is built from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.domain.gates import GateHold, Observations
from bot.domain.policy import EmergencyFreeze, Frozen
from bot.domain.rollout import (
    HOLD_CHANGE,
    HOLD_END,
    HOLD_START,
    PendingStep,
    RolloutSpec,
    RolloutStatus,
    Waiting,
    soak_ends_at,
    state_words,
)

RECENT_EVENTS = 5
_VERB_WORDS = {
    "start": "started",
    "advance": "advanced",
    "pause": "paused",
    "resume": "resumed",
    "rollback": "rolled back",
    "complete": "completed",
    "hold": "held",
    HOLD_START: "held",
    HOLD_CHANGE: "updated the hold",
    HOLD_END: "lifted the hold",
    "request": "asked to move",
    "cancel": "withdrew the request to move",
    "expire": "let expire the request to move",
    "wait": "holds the automatic advance of",
    "freeze": "froze every rollout",
    "unfreeze": "lifted the freeze on every rollout",
}


def verb_words(verb: str) -> str:
    """The past tense people read in a timeline: "advanced", "rolled back"."""
    return _VERB_WORDS.get(verb, verb)


@dataclass(frozen=True)
class GateView:
    """A gate's latest assessment: outcome is pass, fail, no_data or source_down."""

    name: str
    outcome: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class IncidentView:
    """An open incident; `holder` is the Slack user who acknowledged it ("" while nobody has);
    `paged`, the users its pages went to so far; `number`, what its buttons carry."""

    id: str
    summary: str
    holder: str = ""
    rollout: str = ""
    paged: tuple[str, ...] = ()
    number: int | None = None


@dataclass(frozen=True)
class EventView:
    at: datetime
    actor: str
    source: str
    verb: str
    from_percent: int
    to_percent: int
    reason: str = ""
    forced: bool = False


@dataclass(frozen=True)
class RolloutView:
    name: str
    flag: str
    plan: str
    stages: tuple[int, ...]
    state: str
    words: str  # "progressing at 25 %", as the Slack messages say it
    percent: int
    version: int
    stage: int | None  # 1-based; None before the first stage
    advance: str
    hold_reason: str = ""
    stage_started_at: datetime | None = None
    soak: timedelta | None = None
    soak_ends_at: datetime | None = None  # as `decide` judges it; None while a gate is not green
    gate_names: tuple[str, ...] = ()  # configured gates, measured or not
    events: tuple[EventView, ...] = ()  # newest first
    gates: tuple[GateView, ...] = ()
    incidents: tuple[IncidentView, ...] = ()
    held_by: tuple[GateHold, ...] = ()  # gates unknown now (no data, source down), since when
    pending: PendingStep | None = None  # a step waiting for a second person
    waiting: Waiting | None = None  # why its due automatic advance waits
    frozen: Frozen | None = None  # a freeze window or the emergency freeze, holding now



@dataclass(frozen=True)
class Overview:
    rollouts: tuple[RolloutView, ...]
    now: datetime
    timezone: str = "UTC"
    incidents: tuple[IncidentView, ...] = field(default=())  # every open incident
    freeze: EmergencyFreeze | None = None  # `/rollout freeze`: every advance stopped
    names: Mapping[str, str] = field(default_factory=dict)  # people's names by Slack user ID

    def people(self) -> set[str]:
        """Everyone the overview shows: who acted, who holds an incident."""
        found = {e.actor for r in self.rollouts for e in r.events}
        found |= {r.pending.asker for r in self.rollouts if r.pending is not None}
        found |= {self.freeze.by} if self.freeze is not None else set()
        return found | {i.holder for i in self.incidents if i.holder}


def build_overview(
    specs: Mapping[str, RolloutSpec],
    statuses: Mapping[str, RolloutStatus],
    events: Mapping[str, Sequence[Mapping[str, Any]]],
    now: datetime,
    *,
    timezone: str = "UTC",
    gates: Mapping[str, Sequence[GateView]] | None = None,
    incidents: Sequence[IncidentView] = (),
    freeze: EmergencyFreeze | None = None,
    observations: Mapping[str, Observations] | None = None,
) -> Overview:
    """The view-model, in config order. `events` are the service's history rows, oldest first."""
    rollouts = []
    for name, spec in specs.items():
        status = statuses.get(name, RolloutStatus())
        stage = status.stage(spec.plan)
        rollouts.append(
            RolloutView(
                name=name,
                flag=spec.flag,
                plan=spec.plan.name,
                stages=spec.plan.percents,
                state=status.state.value,
                words=state_words(status),
                percent=status.percent,
                version=status.version,
                stage=None if status.stage_index is None else status.stage_index + 1,
                advance=spec.advance.value,
                hold_reason=status.hold_reason,
                stage_started_at=status.stage_started_at,
                soak=stage.soak if stage else None,
                soak_ends_at=soak_ends_at(spec, status, (observations or {}).get(name, {})),
                gate_names=spec.gates,
                events=tuple(_event(e) for e in reversed(events.get(name, ()))),
                gates=tuple((gates or {}).get(name, ())),
                incidents=tuple(i for i in incidents if i.rollout == name),
                held_by=status.held_by,
                pending=status.pending,
                waiting=status.waiting,
                frozen=spec.policy.frozen(now, freeze),
            )
        )
    return Overview(tuple(rollouts), now, timezone, tuple(incidents), freeze)


def _event(row: Mapping[str, Any]) -> EventView:
    return EventView(
        at=row["at"],
        actor=row["actor"],
        source=row["source"],
        verb=row["verb"],
        from_percent=row["from_percent"],
        to_percent=row["to_percent"],
        reason=row.get("reason") or "",
        forced=bool(row.get("forced")),
    )
