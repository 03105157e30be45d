"""Rollout decisions: load the status, call the pure `decide`, write everything in one go.

One transaction holds the new status, its audit event, the Slack messages it causes and
the timers it sets; a crash leaves all or none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.gates import GateHold, Observations
from bot.domain.gates import Outcome as GateOutcome
from bot.domain.policy import EmergencyFreeze, Person, Policy, Role
from bot.domain.rollout import (
    Advance,
    Announce,
    Command,
    Context,
    Decision,
    Expire,
    OpenIncident,
    PendingStep,
    Refusal,
    Resume,
    RolloutSpec,
    RolloutStatus,
    Start,
    State,
    Waiting,
    decide,
    freeze_all,
    soak_ends_at,
    state_words,
    unfreeze_all,
)
from bot.errors import RolloutMoved
from bot.render import blocks
from bot.render.shadow import marked
from storage.models import EventRow, FreezeRow, RolloutRow
from storage.repository import EVERY_ROLLOUT, DueTimer, Repository

# Who or what acted: a Slack user ID, or the bot itself for automatic decisions.
AUTOMATIC = "rollout-bot"
EXPIRY = "confirm-expiry"  # the timer that withdraws a step nobody confirmed in time
SOAK = "soak"  # the timer at the end of a stage's soak (or of the freeze it waits on)


class Unread:
    """Not read by the caller: `decide_in` reads it."""


UNREAD = Unread()


@dataclass(frozen=True)
class Actor:
    user: str
    source: str  # slash, button, socket, automatic
    roles: frozenset[Role] = frozenset()  # for the rollout at hand, user groups resolved

    def person(self) -> Person | None:
        """Who `decide` sees: None for the bot's own decisions."""
        return None if self.user == AUTOMATIC else Person(self.user, self.roles)


BOT = Actor(AUTOMATIC, "automatic")


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
        pending=pending_of(row.pending),
        waiting=waiting_of(row.waiting),
        held_by=holds_of(row.held_by),
        shadow=row.shadow_percent,
    )


def holds_of(stored: list[dict[str, Any]] | None) -> tuple[GateHold, ...]:
    return tuple(
        GateHold(h["gate"], GateOutcome(h["outcome"]), _aware(datetime.fromisoformat(h["since"])))
        for h in stored or ()
    )


def holds_json(holds: tuple[GateHold, ...]) -> list[dict[str, Any]]:
    """As stored, and as the API shows them: gate, outcome, since (ISO 8601, UTC)."""
    return [
        {"gate": h.gate, "outcome": h.outcome.value, "since": h.since.astimezone(UTC).isoformat()}
        for h in holds
    ]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _columns(status: RolloutStatus, now: datetime) -> dict[str, Any]:
    return {
        "state": status.state.value,
        "percent": status.percent,
        "stage_index": status.stage_index,
        "stage_started_at": status.stage_started_at,
        "hold_reason": status.hold_reason,
        "version": status.version,
        "pending": pending_json(status.pending),
        "waiting": waiting_json(status.waiting),
        "held_by": holds_json(status.held_by) or None,
        "shadow_percent": status.shadow,
        "updated_at": now,
    }


def pending_json(pending: PendingStep | None) -> dict[str, Any] | None:
    if pending is None:
        return None
    command = pending.command
    return {
        "id": pending.id,
        "verb": command.verb,
        "target": command.target if isinstance(command, Advance) else None,
        "force": isinstance(command, Advance) and command.force,
        "reason": command.reason if isinstance(command, Advance) else "",
        "asker": pending.asker,
        "asked_at": pending.asked_at.isoformat(),
        "expires_at": pending.expires_at.isoformat(),
        "to_percent": pending.to_percent,
    }


def pending_of(data: dict[str, Any] | None) -> PendingStep | None:
    if not data:
        return None
    command: Start | Advance | Resume
    if data["verb"] == "start":
        command = Start()
    elif data["verb"] == "resume":
        command = Resume()
    else:
        command = Advance(data["target"], bool(data["force"]), data["reason"])
    return PendingStep(
        data["id"],
        command,
        data["asker"],
        datetime.fromisoformat(data["asked_at"]),
        datetime.fromisoformat(data["expires_at"]),
        data["to_percent"],
    )


def waiting_json(waiting: Waiting | None) -> dict[str, Any] | None:
    if waiting is None:
        return None
    until = waiting.until.isoformat() if waiting.until else None
    return {"reason": waiting.reason, "until": until, "frozen": waiting.frozen}


def waiting_of(data: dict[str, Any] | None) -> Waiting | None:
    if not data:
        return None
    until = datetime.fromisoformat(data["until"]) if data.get("until") else None
    return Waiting(data["reason"], until, bool(data.get("frozen")))


def freeze_of(row: FreezeRow | None) -> EmergencyFreeze | None:
    return None if row is None else EmergencyFreeze(row.reason, row.by_user, row.at)


class RolloutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        specs: Mapping[str, RolloutSpec],
        channel: str,
        clock: Clock,
        observations: ObservationSource | None = None,
        reader: async_sessionmaker[AsyncSession] | None = None,
        *,
        incidents: IncidentOpener | None = None,
        prometheus_url: str = "",
    ) -> None:
        self.sessions = sessions
        self.reader = reader or sessions
        self.specs = specs
        self.channel = channel
        self.clock = clock
        self._observations = observations
        self.incidents = incidents
        self.on_change: list[Callable[[], None]] = []  # called after every commit
        self.hooks: list[DecisionHook] = []
        self.prometheus_url = prometheus_url  # for links to gate queries in messages

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

    async def soak_ends(
        self, statuses: Mapping[str, RolloutStatus]
    ) -> dict[str, datetime | None]:
        """When each rollout's stage will have soaked green, as `decide` judges it."""
        now = self.clock.now()
        found: dict[str, datetime | None] = {}
        async with self.reader() as session:
            for name, spec in self.specs.items():
                observations = await self.observations(session, spec, now)
                found[name] = soak_ends_at(spec, statuses[name], observations)
        return found

    async def history(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        async with self.reader() as session:
            events = await Repository(session).events(name, limit, every_rollout=True)
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
                "gates": e.gates or {},
                "policy": e.policy or {},
                "every_rollout": e.rollout == EVERY_ROLLOUT,
            }
            for e in events
        ]

    async def expire(self, timer: DueTimer) -> None:
        """The confirm window of a pending step ended: withdraw it, if it is still there."""
        name = timer.payload.get("rollout", "")
        if name in self.specs:
            await self.act(name, Expire(int(timer.payload["request"])), BOT)

    async def emergency(self) -> EmergencyFreeze | None:
        async with self.reader() as session:
            return freeze_of(await Repository(session).freeze())

    async def freeze(self, actor: Actor, policy: Policy, reason: str) -> Outcome:
        """`/rollout freeze REASON`: stop every advance of every rollout until lifted."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            person = actor.person() or Person(actor.user)
            result = freeze_all(policy, person, freeze_of(await repo.freeze()), reason, now)
            if isinstance(result, Refusal):
                return Outcome(False, blocks.refusal_text(result))
            await repo.set_freeze(result.reason, result.by, now)
            self._record_freeze(repo, "freeze", actor, result.reason, now)
            repo.enqueue(self.channel, "message", blocks.freeze_message(result), now)
        self._notify()
        return Outcome(
            True, "Done: every advance of every rollout is frozen until a lead types "
            "`/rollout unfreeze`. Pause, rollback and ack still work."
        )

    async def unfreeze(self, actor: Actor, policy: Policy) -> Outcome:
        """`/rollout unfreeze`: lift the emergency freeze; waiting rollouts go on."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            person = actor.person() or Person(actor.user)
            result = unfreeze_all(policy, person, freeze_of(await repo.freeze()))
            if isinstance(result, Refusal) or not await repo.lift_freeze():
                refusal = result if isinstance(result, Refusal) else Refusal("Nothing is frozen.")
                return Outcome(False, blocks.refusal_text(refusal))
            self._record_freeze(repo, "unfreeze", actor, result.reason, now)
            repo.enqueue(self.channel, "message", blocks.unfreeze_message(result, actor.user), now)
            for row in await repo.rollouts(self.specs):
                if row.state == State.PROGRESSING.value and row.waiting:
                    await repo.set_timer(f"{SOAK}:{row.name}", SOAK, now, {"rollout": row.name})
        self._notify()
        return Outcome(True, "Done: the freeze is lifted; rollouts may advance again.")

    def _record_freeze(
        self, repo: Repository, verb: str, actor: Actor, reason: str, now: datetime
    ) -> None:
        repo.add_event(
            EventRow(
                rollout=EVERY_ROLLOUT,
                at=now,
                actor=actor.user,
                source=actor.source,
                verb=verb,
                from_state="",
                to_state="",
                from_percent=0,
                to_percent=0,
                reason=reason,
                forced=False,
                version=0,
                policy={"freeze": reason},
            )
        )

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
        except RolloutMoved:
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
        observations: Observations | None = None,
        freeze: FreezeRow | Unread | None = UNREAD,
    ) -> Outcome:
        """Decide and record inside the caller's transaction (the gate service writes its
        measurements in the same one). Raises `RolloutMoved` when another writer won the race:
        the caller's transaction must then roll back. A caller that read the gates and the
        freeze in this transaction already (the gate tick, for many rollouts) passes them."""
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
        if observations is None:
            observations = await self.observations(session, spec, now)
        if isinstance(freeze, Unread):
            freeze = await repo.freeze()
        context = Context(actor.person(), freeze_of(freeze))
        result = decide(spec, status, observations, command, now, context)
        if isinstance(result, Refusal):
            return Outcome(False, blocks.refusal_text(result))
        if not await repo.save_rollout(name, status.version, _columns(result.status, now)):
            raise RolloutMoved  # another replica wrote first; roll this transaction back
        await self._record(session, spec, result, actor, now, observations)
        reply = _done_text(spec, result)
        if dedup_key is not None and not await repo.remember_request(dedup_key, now, reply):
            raise RolloutMoved
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
        observations: Observations | None = None,
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
                gates=_gate_values(observations or {}),
                policy=_policy_note(decision),
            )
        )
        pending = decision.status.pending
        if change.verb == "request" and pending is not None:
            await repo.set_timer(
                f"{EXPIRY}:{spec.name}",
                EXPIRY,
                pending.expires_at,
                {"rollout": spec.name, "request": pending.id},
            )
        elif pending is None:
            await repo.cancel_timer(f"{EXPIRY}:{spec.name}")
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
        parent = marked(blocks.parent_message(spec, decision.status), decision.status)
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
        reply = marked(reply, decision.status)
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


def _gate_values(observations: Observations) -> dict[str, Any] | None:
    """The gates as they stood when the decision was made, for the audit log."""
    if not observations:
        return None
    return {
        name: {"outcome": v.outcome.value, "value": v.value, "threshold": v.threshold}
        for name, v in observations.items()
    }


def _policy_note(decision: Decision) -> dict[str, Any] | None:
    change, status = decision.change, decision.status
    note = {
        "asked_by": change.asked_by,
        "confirmed_by": change.confirmed_by,
        "window": change.window,
    }
    if status.pending is not None:
        note["expires_at"] = status.pending.expires_at.isoformat()
    note = {k: v for k, v in note.items() if v}
    return note or None




def _done_text(spec: RolloutSpec, decision: Decision) -> str:
    change, status = decision.change, decision.status
    if change.verb == "request" and status.pending is not None:
        return blocks.request_reply(spec, status.pending)
    if change.verb in ("cancel", "expire"):
        return f"Withdrawn: the request to {change.reason} of {spec.name}. Nothing moved."
    text = f"Done: {spec.name} is now {state_words(status)}"
    if change.verb == "complete":
        text = f"Done: {spec.name} is complete at {status.percent} %"
    if change.confirmed_by:
        text += f" (asked by {blocks.mention(change.asked_by)}, confirmed by you)"
    return text + ". The thread in the channel has the details."
