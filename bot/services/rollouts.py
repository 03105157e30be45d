"""Rollout decisions: load the status, call the pure `decide`, write everything in one go.

One transaction holds the new status, its audit event, the Slack messages it causes and
the timers it sets; a crash leaves all or none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.gates import Observations
from bot.domain.rollout import (
    Announce,
    Command,
    Decision,
    OpenIncident,
    Refusal,
    RolloutSpec,
    RolloutStatus,
    State,
    decide,
    state_words,
)
from bot.slack import blocks
from storage.models import EventRow, RolloutRow
from storage.repository import Repository

# Who or what acted: a Slack user ID, or the bot itself for automatic decisions.
AUTOMATIC = "rollout-bot"


@dataclass(frozen=True)
class Actor:
    user: str
    source: str  # slash, button, socket, automatic


@dataclass(frozen=True)
class Outcome:
    """What the person who acted is told."""

    ok: bool
    text: str
    decision: Decision | None = None
    duplicate: bool = False


ObservationSource = Callable[[AsyncSession, RolloutSpec, datetime], Any]
# Called inside a decision's transaction, after its event and messages are written: sets
# the timers the new status needs (gate measurements, soak end, webhook delivery).
DecisionHook = Callable[[AsyncSession, RolloutSpec, Decision, datetime], Awaitable[None]]


class IncidentOpener(Protocol):
    """Opens an incident inside the decision's own transaction."""

    async def open_incident(
        self, session: AsyncSession, spec: RolloutSpec, effect: OpenIncident, now: datetime
    ) -> None: ...


def status_of(row: RolloutRow) -> RolloutStatus:
    return RolloutStatus(
        state=State(row.state),
        percent=row.percent,
        stage_index=row.stage_index,
        stage_started_at=row.stage_started_at,
        hold_reason=row.hold_reason,
        version=row.version,
    )


def _columns(status: RolloutStatus, now: datetime) -> dict[str, Any]:
    return {
        "state": status.state.value,
        "percent": status.percent,
        "stage_index": status.stage_index,
        "stage_started_at": status.stage_started_at,
        "hold_reason": status.hold_reason,
        "version": status.version,
        "updated_at": now,
    }


class RolloutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        specs: Mapping[str, RolloutSpec],
        channel: str,
        clock: Clock,
        observations: ObservationSource | None = None,
        reader: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions = sessions
        self.reader = reader or sessions
        self.specs = specs
        self.channel = channel
        self.clock = clock
        self._observations = observations
        self.incidents: IncidentOpener | None = None
        self.on_change: list[Callable[[], None]] = []  # called after every commit
        self.hooks: list[DecisionHook] = []
        self.prometheus_url = ""  # for links to gate queries in messages

    def notify(self) -> None:
        self._notify()

    def _notify(self) -> None:
        for listener in self.on_change:
            listener()

    async def prepare(self) -> None:
        """Create a pending row for every configured rollout that has none yet."""
        async with self.sessions() as session, session.begin():
            await Repository(session).ensure_rollouts(self.specs, self.clock.now())

    async def statuses(self) -> dict[str, RolloutStatus]:
        async with self.reader() as session:
            rows = await Repository(session).rollouts(self.specs)
        return {row.name: status_of(row) for row in rows}

    async def history(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        async with self.reader() as session:
            events = await Repository(session).events(name, limit)
        return [
            {
                "at": e.at,
                "actor": e.actor,
                "source": e.source,
                "verb": e.verb,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "from_percent": e.from_percent,
                "to_percent": e.to_percent,
                "reason": e.reason,
                "forced": e.forced,
                "version": e.version,
            }
            for e in events
        ]

    async def tell(self, channel: str, user: str, text: str) -> None:
        """An ephemeral message to one person, through the outbox."""
        async with self.sessions() as session, session.begin():
            Repository(session).enqueue(
                channel, "ephemeral", {"user": user, "text": text}, self.clock.now()
            )
        self._notify()

    async def act(
        self,
        name: str,
        command: Command,
        actor: Actor,
        *,
        expected_version: int | None = None,
        dedup_key: str | None = None,
    ) -> Outcome:
        """Apply a command to a rollout. `expected_version` is the version the actor saw:
        if someone else moved the rollout since, nothing happens and the actor is told."""
        spec = self.specs[name]
        now = self.clock.now()
        try:
            outcome = await self._act(spec, command, actor, expected_version, dedup_key, now)
        except _Moved:
            async with self.sessions() as session:
                repo = Repository(session)
                row = await repo.rollout(name)
                assert row is not None
                return Outcome(False, await self._moved_text(repo, spec, status_of(row)))
        if outcome.decision is not None:
            self._notify()
        return outcome

    async def _act(
        self,
        spec: RolloutSpec,
        command: Command,
        actor: Actor,
        expected_version: int | None,
        dedup_key: str | None,
        now: datetime,
    ) -> Outcome:
        async with self.sessions() as session, session.begin():
            return await self.decide_in(
                session,
                spec,
                command,
                actor,
                now,
                expected_version=expected_version,
                dedup_key=dedup_key,
            )

    async def decide_in(
        self,
        session: AsyncSession,
        spec: RolloutSpec,
        command: Command,
        actor: Actor,
        now: datetime,
        *,
        expected_version: int | None = None,
        dedup_key: str | None = None,
    ) -> Outcome:
        """Decide and record inside the caller's transaction (the gate service writes its
        measurements in the same one). Raises `Moved` when another writer won the race:
        the caller's transaction must then roll back."""
        name = spec.name
        repo = Repository(session)
        if dedup_key is not None:
            prior = await repo.processed_reply(dedup_key)
            if prior is not None:
                return Outcome(True, prior, duplicate=True)
        row = await repo.rollout(name)
        assert row is not None, f"rollout {name} has no row; prepare() creates them"
        status = status_of(row)
        if expected_version is not None and expected_version != status.version:
            return Outcome(False, await self._moved_text(repo, spec, status))
        observations = await self.observations(session, spec, now)
        result = decide(spec, status, observations, command, now)
        if isinstance(result, Refusal):
            # A refusal may quote a reason someone typed ("paused at 25 % (<!here> …)");
            # the domain writes no Slack markup of its own, so all of it is escaped.
            return Outcome(False, blocks.escape(f"{result.problem}\n{result.hint}".strip()))
        if not await repo.save_rollout(name, status.version, _columns(result.status, now)):
            raise _Moved  # another replica wrote first; roll this transaction back
        await self._record(session, spec, result, actor, now)
        reply = _done_text(spec, result)
        if dedup_key is not None and not await repo.remember_request(dedup_key, now, reply):
            raise _Moved
        return Outcome(True, reply, result)

    async def observations(
        self, session: AsyncSession, spec: RolloutSpec, now: datetime
    ) -> Observations:
        if self._observations is None or not spec.gates:
            return {}
        found: Observations = await self._observations(session, spec, now)
        return found

    async def _record(
        self,
        session: AsyncSession,
        spec: RolloutSpec,
        decision: Decision,
        actor: Actor,
        now: datetime,
    ) -> None:
        repo = Repository(session)
        change = decision.change
        repo.add_event(
            EventRow(
                rollout=spec.name,
                at=now,
                actor=actor.user,
                source=actor.source,
                verb=change.verb,
                from_state=change.from_state.value,
                to_state=change.to_state.value,
                from_percent=change.from_percent,
                to_percent=change.to_percent,
                reason=change.reason,
                forced=change.forced,
                version=decision.status.version,
            )
        )
        for effect in decision.effects:
            if isinstance(effect, Announce):
                self._announce(repo, spec, decision, actor, effect, now)
            elif isinstance(effect, OpenIncident) and self.incidents is not None:
                await self.incidents.open_incident(session, spec, effect, now)
        for hook in self.hooks:
            await hook(session, spec, decision, now)

    def _announce(
        self,
        repo: Repository,
        spec: RolloutSpec,
        decision: Decision,
        actor: Actor,
        effect: Announce,
        now: datetime,
    ) -> None:
        parent = blocks.parent_message(spec, decision.status)
        if effect.new_thread:
            repo.enqueue(self.channel, "thread_parent", parent, now, rollout=spec.name)
        reply = blocks.change_message(
            spec,
            decision.change,
            decision.status,
            actor.user,
            actor.source,
            gates=decision.gates,
            prometheus_url=self.prometheus_url,
        )
        reply["reply_broadcast"] = effect.broadcast
        repo.enqueue(self.channel, "thread_reply", reply, now, rollout=spec.name)
        if not effect.new_thread:
            repo.enqueue(self.channel, "parent_update", parent, now, rollout=spec.name)

    async def _moved_text(self, repo: Repository, spec: RolloutSpec, status: RolloutStatus) -> str:
        events = await repo.events(spec.name, limit=1)
        by = ""
        if events:
            last = events[-1]
            by = f" ({blocks.mention(last.actor)} {last.verb} it {blocks.slack_date(last.at)})"
        return (
            f"{spec.name} moved while you were acting{by}: it is now {state_words(status)}.\n"
            f"Nothing was done. Check `/rollout status {spec.name}` and act again if you"
            " still want to."
        )


class _Moved(Exception):
    """The rollout row changed under this transaction."""


Moved = _Moved


def _done_text(spec: RolloutSpec, decision: Decision) -> str:
    change = decision.change
    text = f"Done: {spec.name} is now {state_words(decision.status)}"
    if change.verb == "complete":
        text = f"Done: {spec.name} is complete at {decision.status.percent} %"
    return text + ". The thread in the channel has the details."
