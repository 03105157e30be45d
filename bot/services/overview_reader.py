"""Reading the overview: rollout statuses and recent events from the service, and gate
states and open incidents from whoever provides them, built into the pure view-model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.gates import GateView as GateStateView
from bot.domain.rollout import RolloutSpec
from bot.render.incident_blocks import page_refs_of, parse_page_ref
from bot.render.overview_model import (
    RECENT_EVENTS,
    GateView,
    IncidentView,
    Overview,
    build_overview,
)
from bot.services.rollouts import RolloutService
from storage.incidents import IncidentLogRow, Incidents
from storage.message_refs import refs_starting
from storage.repository import Repository

GateSource = Callable[[], Awaitable[Mapping[str, Mapping[str, GateStateView]]]]
IncidentSource = Callable[[], Awaitable[Sequence[IncidentView]]]


class OverviewSource:
    """Reads what the overview shows. `gates` and `incidents` are plugged in by the wiring
    once gate states and incidents exist; until then the overview shows none."""

    def __init__(
        self,
        service: RolloutService,
        clock: Clock,
        *,
        timezone: str = "UTC",
        recent_events: int = RECENT_EVENTS,
        gates: GateSource | None = None,
        incidents: IncidentSource | None = None,
    ) -> None:
        self.service = service
        self.clock = clock
        self.timezone = timezone
        self.recent_events = recent_events
        self.gates = gates
        self.incidents = incidents

    @property
    def on_change(self) -> list[Callable[[], None]]:
        """Listeners called after every change the service commits."""
        return self.service.on_change

    async def load(self) -> Overview:
        statuses = await self.service.statuses()
        events = {}
        if self.recent_events:
            for name in self.service.specs:
                events[name] = await self.service.history(name, limit=self.recent_events)
        observations = await self.gates() if self.gates is not None else {}
        incidents = await self.incidents() if self.incidents is not None else ()
        return build_overview(
            self.service.specs,
            statuses,
            events,
            self.clock.now(),
            timezone=self.timezone,
            gates={
                name: [
                    GateView(v.name, v.outcome.value, v.value, v.threshold)
                    for v in (views[g] for g in self.service.specs[name].gates if g in views)
                ]
                for name, views in observations.items()
            },
            incidents=incidents,
            freeze=await self.service.emergency(),
            observations=observations,
        )


class _GateStates(Protocol):
    async def observations(
        self, session: AsyncSession, spec: RolloutSpec, now: datetime
    ) -> Mapping[str, GateStateView]: ...


def gate_states(gates: _GateStates, service: RolloutService) -> GateSource:
    """The latest gate outcomes of every rollout, as the control loop last measured them."""

    async def read() -> Mapping[str, Mapping[str, GateStateView]]:
        now = service.clock.now()
        found: dict[str, Mapping[str, GateStateView]] = {}
        async with service.reader() as session:
            for name, spec in service.specs.items():
                if spec.gates:
                    found[name] = await gates.observations(session, spec, now)
        return found

    return read


def open_incidents(sessions: async_sessionmaker[AsyncSession]) -> IncidentSource:
    """Every live incident (open or acknowledged), oldest first, with whom it paged."""

    async def read() -> Sequence[IncidentView]:
        async with sessions() as session:
            rows = await Incidents(session).live()
            paged = await paged_users(session, [r.id for r in rows])
        return [
            IncidentView(
                f"#{r.id}",
                r.summary,
                r.acked_by or "",
                r.rollout or "",
                paged=tuple(sorted(paged.get(r.id, ()))),
                number=r.id,
            )
            for r in rows
        ]

    return read


async def paged_users(session: AsyncSession, incident_ids: Sequence[int]) -> dict[int, set[str]]:
    """The users each incident paged so far: those its chain named, and the members of its
    user groups that were sent a page."""
    found: dict[int, set[str]] = {i: set() for i in incident_ids}
    if not incident_ids:
        return found
    logged = await session.scalars(
        select(IncidentLogRow).where(
            IncidentLogRow.incident_id.in_(list(incident_ids)), IncidentLogRow.verb == "paged"
        )
    )
    for entry in logged:
        if entry.target[:1] in ("U", "W"):
            found[entry.incident_id].add(entry.target)
    for incident in incident_ids:
        for ref in await refs_starting(session, page_refs_of(incident)):
            parsed = parse_page_ref(ref.ref)
            if parsed is not None:
                found[incident].add(parsed[1])
    return found


def rollout_threads(service: RolloutService) -> Callable[[], Awaitable[dict[str, tuple[str, str]]]]:
    """Where each rollout's thread is in the channel, (channel, ts), once it was posted."""

    async def read() -> dict[str, tuple[str, str]]:
        async with service.reader() as session:
            rows = await Repository(session).rollouts(service.specs)
        return {
            r.name: (r.thread_channel, r.thread_ts)
            for r in rows
            if r.thread_channel and r.thread_ts
        }

    return read
