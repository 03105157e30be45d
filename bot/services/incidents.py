"""Incidents: open, page along the chain, acknowledge, silence, resolve.

Load → pure transition (`bot.domain.escalation`) → one transaction with the new cursor
(written only if its token has not moved), the incident log, the Slack messages and the
escalation timer. A step already in flight when someone acknowledges finds the token
moved and does nothing; a step that ran committed its pages with its timer's end, so a
restarted bot never pages twice for the same step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import OncallConfig
from bot.domain import escalation as esc
from bot.domain.durations import format_duration
from bot.domain.escalation import (
    ChainSnapshot,
    Escalation,
    IncidentState,
    Level,
    TargetKind,
    Transition,
)
from bot.domain.rollout import OpenIncident, RolloutSpec
from bot.errors import IncidentMoved
from bot.render import incident_blocks as render
from storage.incidents import LIVE, IncidentRow, Incidents
from storage.message_refs import refs_starting
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

TIMER_KIND = "escalation"
BOT = "rollout-bot"
MAX_RETRIES = 5
# Incidents about gates that cannot be measured (their kind is the gates' outcome): they
# end by themselves once every gate they are about is measured green again.
UNMEASURED_KINDS = ("no_data", "source_down")
ABOUT_GATE = "about gate"  # the incident log's record of a gate an incident is about

GroupMembers = Callable[[str], Awaitable[list[str]]]


def timer_key(incident_id: int) -> str:
    return f"incident:{incident_id}"


def snapshot_of(oncall: OncallConfig) -> ChainSnapshot:
    """Copy the configured chain: the incident keeps this copy whatever the config becomes."""
    levels = tuple(
        Level(TargetKind.USER, lv.user, lv.wait)
        if lv.user is not None
        else Level(TargetKind.GROUP, str(lv.group), lv.wait)
        for lv in oncall.chain
    )
    return ChainSnapshot(levels, oncall.repeat, oncall.remind_after)


def cursor_of(row: IncidentRow) -> Escalation:
    return Escalation(
        state=IncidentState(row.state),
        step=row.step,
        next_due=row.next_due,
        token=row.token,
        exhausted=row.exhausted,
        acked_by=row.acked_by,
        acked_at=row.acked_at,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        silenced_until=row.silenced_until,
    )


def _cursor_values(cursor: Escalation, source_key: str, now: datetime) -> dict[str, Any]:
    live = cursor.state is not IncidentState.RESOLVED
    return {
        "state": cursor.state.value,
        "step": cursor.step,
        "next_due": cursor.next_due,
        "token": cursor.token,
        "exhausted": cursor.exhausted,
        "acked_by": cursor.acked_by,
        "acked_at": cursor.acked_at,
        "resolved_by": cursor.resolved_by,
        "resolved_at": cursor.resolved_at,
        "silenced_until": cursor.silenced_until,
        "live_key": source_key if live else None,
        "updated_at": now,
    }


def view_of(row: IncidentRow) -> render.IncidentView:
    return render.IncidentView(
        id=row.id,
        kind=row.kind,
        summary=row.summary,
        state=IncidentState(row.state),
        opened_at=row.opened_at,
        rollout=row.rollout,
        detail=row.detail,
        source_url=row.source_url or "",
        severity=row.severity,
        acked_by=row.acked_by,
        acked_at=row.acked_at,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        silenced_until=row.silenced_until,
        exhausted=row.exhausted,
        alerts=dict(row.alerts or {}),
    )


@dataclass(frozen=True)
class Answer:
    """What the person who acted is told."""

    ok: bool
    text: str
    incident: int | None = None


@dataclass(frozen=True)
class NewIncident:
    """What opens an incident, from the bot's own decisions or from Alertmanager."""

    source: str  # bot | alertmanager
    source_key: str
    kind: str
    summary: str
    rollout: str | None = None
    detail: str = ""
    severity: str = ""
    alerts: Mapping[str, Any] = field(default_factory=dict)
    source_url: str = ""  # where an alert came from; the renderer decides if it is a link
    silence_labels: Mapping[str, str] | None = None  # an alert group's, for Alertmanager


class IncidentService:
    """Implements `bot.services.rollouts.IncidentOpener`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        oncall: OncallConfig,
        operators: Sequence[str],
        channel: str,
        group_members: GroupMembers | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.oncall = oncall
        self.operators = tuple(operators)
        self.channel = channel
        self.group_members = group_members
        self.on_change: list[Callable[[], None]] = []  # called after every commit

    def _notify(self) -> None:
        for listener in self.on_change:
            listener()

    # --- opening ----------------------------------------------------------------------

    async def open_incident(
        self, session: AsyncSession, spec: RolloutSpec, effect: OpenIncident, now: datetime
    ) -> None:
        """Open an incident for a rollout decision, inside the decision's transaction.
        While one of the same kind is live for the rollout, it is noted, not reopened."""
        new = NewIncident(
            source="bot",
            source_key=_bot_key(spec.name, effect.kind),
            kind=effect.kind,
            summary=effect.summary,
            rollout=spec.name,
            detail=effect.detail,
            severity="critical",
        )
        await self.open(session, new, now)

    async def open(
        self, session: AsyncSession, new: NewIncident, now: datetime
    ) -> tuple[IncidentRow, bool]:
        """Open `new` unless an incident with its key is live. Returns the incident and
        whether it is new. Runs in the caller's transaction."""
        incidents = Incidents(session)
        existing = await incidents.live_by_key(new.source_key, lock=True)
        if existing is not None:
            incidents.log(existing.id, now, "seen again", BOT, detail=new.summary)
            return existing, False
        snapshot = snapshot_of(self.oncall)
        transition = esc.begin(snapshot, now)
        row = IncidentRow(
            source=new.source,
            source_key=new.source_key,
            rollout=new.rollout,
            kind=new.kind,
            severity=new.severity,
            summary=new.summary[:2000],
            detail=new.detail[:2000],
            source_url=new.source_url[:2000],
            chain=snapshot.to_json(),
            alerts=dict(new.alerts),
            silence_labels=None if new.silence_labels is None else dict(new.silence_labels),
            opened_at=now,
            **_cursor_values(transition.escalation, new.source_key, now),
        )
        if not await incidents.add(row):
            existing = await incidents.live_by_key(new.source_key, lock=True)
            assert existing is not None, "a live incident holds the key"
            incidents.log(existing.id, now, "seen again", BOT, detail=new.summary)
            return existing, False
        incidents.log(row.id, now, "opened", new.source, detail=new.summary)
        message = render.incident_message(view_of(row))
        Repository(session).enqueue(
            self.channel,
            "incident_post",
            {"incident": row.id, **message},
            now,
            rollout=row.rollout,
        )
        await self._effects(session, row, snapshot, transition, now)
        return row, True

    # --- gates that cannot be measured --------------------------------------------------

    async def note_gate(
        self, session: AsyncSession, rollout: str, kind: str, gate: str, now: datetime
    ) -> None:
        """Remember that the rollout's live `kind` incident (no data, source down) is about
        `gate`, in the transaction that paged for it."""
        incidents = Incidents(session)
        row = await incidents.live_by_key(_bot_key(rollout, kind))
        if row is not None and gate not in await incidents.gates_of(row.id, ABOUT_GATE):
            incidents.log(row.id, now, ABOUT_GATE, BOT, detail=gate)

    async def unmeasured_rollouts(self, session: AsyncSession) -> set[str]:
        """The rollouts with a live no-data or source-down incident: the ones whose gate
        tick asks `resolve_measured`."""
        return {
            row.rollout
            for row in await Incidents(session).live()
            if row.rollout is not None
            and any(row.live_key == _bot_key(row.rollout, kind) for kind in UNMEASURED_KINDS)
        }

    async def resolve_measured(
        self, session: AsyncSession, rollout: str, green: Collection[str], now: datetime
    ) -> list[int]:
        """Resolve the rollout's live no-data and source-down incidents whose every gate is
        measured green (`green`), inside the caller's transaction (the gate tick's): the
        incident's message and thread say so, and its escalation stops. Returns the ids
        resolved; one that someone is acting on at this moment waits for the next tick."""
        incidents = Incidents(session)
        resolved = []
        for kind in UNMEASURED_KINDS:
            found = await incidents.live_by_key(_bot_key(rollout, kind))
            if found is None:
                continue
            gates = await incidents.gates_of(found.id, ABOUT_GATE)
            if not gates or not set(gates) <= set(green):
                continue
            row = await incidents.get(found.id, lock=True)
            if row is None or row.state not in LIVE:
                continue
            result = esc.resolve(cursor_of(row), BOT, now)
            if isinstance(result, esc.Refused):
                continue
            values = _cursor_values(result.escalation, row.source_key, now)
            if not await incidents.save(row.id, row.token, values):
                continue
            _refresh(row, values)
            back = ", ".join(gates)
            incidents.log(row.id, now, "resolved", BOT, detail=f"measured green again: {back}")
            await self._effects(
                session, row, ChainSnapshot.from_json(row.chain), result, now, edit=True
            )
            message = render.resolved_by_data(view_of(row), gates)
            Repository(session).enqueue(
                self.channel,
                "incident_reply",
                {"incident": row.id, **message},
                now,
                rollout=row.rollout,
            )
            resolved.append(row.id)
        return resolved

    # --- the escalation timer ---------------------------------------------------------

    async def on_timer(self, timer: DueTimer) -> None:
        """Run an escalation step. Does nothing if the incident moved since it was set."""
        incident_id = int(timer.payload["incident"])
        token = int(timer.payload["token"])
        now = self.clock.now()
        changed = False
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            incidents = Incidents(session)
            row = await incidents.get(incident_id, lock=True)
            if row is not None and row.token == token:
                snapshot = ChainSnapshot.from_json(row.chain)
                cursor = cursor_of(row)
                transition = esc.step(snapshot, cursor, now)
                if transition.escalation != cursor:
                    values = _cursor_values(transition.escalation, row.source_key, now)
                    if await incidents.save(row.id, token, values):
                        _refresh(row, values)
                        await self._effects(session, row, snapshot, transition, now)
                        changed = True
            await repo.finish_timer(timer.key, timer.token)
        if changed:
            self._notify()

    # --- what people do ---------------------------------------------------------------

    async def acknowledge(self, incident_id: int, user: str) -> Answer:
        return await self._respond(
            incident_id, user, "acknowledge", lambda s, c, now: esc.acknowledge(s, c, user, now)
        )

    async def resolve(self, incident_id: int, user: str) -> Answer:
        return await self._respond(
            incident_id, user, "resolve", lambda s, c, now: esc.resolve(c, user, now)
        )

    async def silence(
        self, incident_id: int, user: str, duration: timedelta = esc.SILENCE_DEFAULT
    ) -> Answer:
        return await self._respond(
            incident_id,
            user,
            "silence",
            lambda s, c, now: esc.silence(c, user, now, duration),
            done=lambda row: _silenced_text(row, duration),
        )

    async def unsilence(self, incident_id: int, user: str) -> Answer:
        return await self._respond(
            incident_id, user, "unsilence", lambda s, c, now: esc.unsilence(s, c, user, now)
        )

    async def get(self, incident_id: int) -> IncidentRow | None:
        async with self.sessions() as session:
            return await Incidents(session).get(incident_id)

    async def note_silence(
        self, incident_id: int, user: str, silence_id: str | None, message: Mapping[str, Any]
    ) -> None:
        """Remember the Alertmanager silence held for the incident (None: it was expired),
        and say so in the incident's thread."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            incidents = Incidents(session)
            row = await incidents.get(incident_id)
            if row is None:
                return
            previous = row.silence_id
            await incidents.set_silence(incident_id, silence_id)
            verb = "silenced in alertmanager" if silence_id else "unsilenced in alertmanager"
            incidents.log(incident_id, now, verb, user, detail=silence_id or previous or "")
            Repository(session).enqueue(
                self.channel,
                "incident_reply",
                {"incident": incident_id, **message},
                now,
                rollout=row.rollout,
            )
        self._notify()

    async def live(self) -> list[render.IncidentView]:
        async with self.sessions() as session:
            rows = await Incidents(session).live()
        return [view_of(r) for r in rows]

    async def may_respond(self, snapshot: ChainSnapshot, user: str) -> bool:
        if esc.may_respond(snapshot, user, self.operators):
            return True
        members: list[str] = []
        if self.group_members is not None:
            for group in snapshot.groups():
                try:
                    members += await self.group_members(group)
                except Exception:
                    log.exception("could not list the members of user group %s", group)
        return esc.may_respond(snapshot, user, self.operators, members)

    def who_may(self, snapshot: ChainSnapshot) -> str:
        people = [lv.mention() for lv in snapshot.levels]
        people += [f"<@{u}>" for u in self.operators]
        return ", ".join(dict.fromkeys(people)) or "nobody"

    async def _respond(
        self,
        incident_id: int,
        user: str,
        verb: str,
        transition_of: Callable[[ChainSnapshot, Escalation, datetime], Transition | esc.Refused],
        done: Callable[[IncidentRow], str] | None = None,
    ) -> Answer:
        async with self.sessions() as session:
            row = await Incidents(session).get(incident_id)
        if row is None:
            return Answer(False, f"There is no incident {incident_id}.")
        snapshot = ChainSnapshot.from_json(row.chain)
        if not await self.may_respond(snapshot, user):
            return Answer(
                False,
                f"You may not {verb} incident #{incident_id}: only the people in its on-call "
                f"chain, operators and leads may. Who may: {self.who_may(snapshot)}.",
                incident_id,
            )
        for _ in range(MAX_RETRIES):
            now = self.clock.now()
            try:
                async with self.sessions() as session, session.begin():
                    incidents = Incidents(session)
                    row = await incidents.get(incident_id, lock=True)
                    assert row is not None
                    result = transition_of(snapshot, cursor_of(row), now)
                    if isinstance(result, esc.Refused):
                        return Answer(
                            False, f"Incident #{incident_id}: {result.reason}.", incident_id
                        )
                    values = _cursor_values(result.escalation, row.source_key, now)
                    if not await incidents.save(row.id, row.token, values):
                        raise IncidentMoved
                    _refresh(row, values)
                    incidents.log(row.id, now, result.verb, user)
                    await self._effects(session, row, snapshot, result, now, edit=True)
            except IncidentMoved:
                continue
            self._notify()
            return Answer(True, done(row) if done else _done_text(verb, row), incident_id)
        return Answer(False, f"Incident #{incident_id} kept changing; try again.", incident_id)

    # --- alerts -----------------------------------------------------------------------

    async def update_alerts(
        self, session: AsyncSession, row: IncidentRow, alerts: Mapping[str, Any], now: datetime
    ) -> bool:
        """Merge an alert group's latest alerts into its incident; edit its message in
        place when they changed."""
        merged = {**(row.alerts or {}), **alerts}
        if merged == row.alerts:
            return False
        row.alerts = merged
        row.updated_at = now
        Incidents(session).log(row.id, now, "alerts changed", "alertmanager")
        self._edit(session, row, now)
        return True

    async def resolve_in(
        self, session: AsyncSession, row: IncidentRow, actor: str, now: datetime
    ) -> bool:
        """Resolve inside the caller's transaction (Alertmanager said it is over)."""
        snapshot = ChainSnapshot.from_json(row.chain)
        result = esc.resolve(cursor_of(row), actor, now)
        if isinstance(result, esc.Refused):
            return False
        values = _cursor_values(result.escalation, row.source_key, now)
        if not await Incidents(session).save(row.id, row.token, values):
            raise IncidentMoved
        _refresh(row, values)
        Incidents(session).log(row.id, now, "resolved", actor)
        await self._effects(session, row, snapshot, result, now, edit=True)
        return True

    def notify(self) -> None:
        self._notify()

    # --- effects: timers and messages --------------------------------------------------

    async def _effects(
        self,
        session: AsyncSession,
        row: IncidentRow,
        snapshot: ChainSnapshot,
        transition: Transition,
        now: datetime,
        *,
        edit: bool = False,
    ) -> None:
        repo = Repository(session)
        incidents = Incidents(session)
        cursor = transition.escalation
        key = timer_key(row.id)
        if cursor.next_due is not None:
            payload = {"incident": row.id, "token": cursor.token}
            await repo.set_timer(key, TIMER_KIND, cursor.next_due, payload)
        else:
            await repo.cancel_timer(key)
        view = view_of(row)
        for action in transition.actions:
            if isinstance(action, esc.Page):
                self._page(repo, view, snapshot, action, now)
                incidents.log(
                    row.id,
                    now,
                    "paged",
                    BOT,
                    target=action.target.target,
                    level=action.level,
                    round=action.round,
                )
            elif isinstance(action, esc.NobodyAnswered):
                message = render.nobody_answered(view, snapshot)
                repo.enqueue(self.channel, "message", message, now, rollout=row.rollout)
                incidents.log(row.id, now, "nobody answered", BOT, detail=f"{action.rounds}")
                edit = True
            elif isinstance(action, esc.Remind):
                message = render.reminder(view, action.acked_at, now)
                repo.enqueue(action.user, "message", message, now)
                incidents.log(row.id, now, "reminded", BOT, target=action.user)
        if edit:
            self._edit(session, row, now)
            if render.answered(view_of(row)):
                await self._edit_pages(session, row, now)

    async def _edit_pages(self, session: AsyncSession, row: IncidentRow, now: datetime) -> None:
        """Edit every page of the incident in place: who took it replaces the buttons. One
        edit per person paged, queued behind their pages, so each page is posted (and its
        place remembered) before it is edited."""
        paged = {
            entry.target
            for entry in await Incidents(session).logs(row.id)
            if entry.verb == "paged" and entry.target[:1] in ("U", "W")
        }
        # Members of a paged user group, whose pages went out one by one.
        for ref in await refs_starting(session, render.page_refs_of(row.id)):
            parsed = render.parse_page_ref(ref.ref)
            if parsed is not None:
                paged.add(parsed[1])
        repo = Repository(session)
        # What the edited pages say at the top (the same whatever the level and round).
        text = render.page_dm(view_of(row), 0, 0, ChainSnapshot.from_json(row.chain))["text"]
        for user in sorted(paged):
            payload = {"incident": row.id, "user": user, "text": text}
            repo.enqueue(user, "page_update", payload, now)

    def _page(
        self,
        repo: Repository,
        view: render.IncidentView,
        snapshot: ChainSnapshot,
        page: esc.Page,
        now: datetime,
    ) -> None:
        dm = render.page_dm(view, page.level, page.round, snapshot)
        target = page.target
        if target.kind is TargetKind.USER:
            # Remembered where it lands, to be edited in place once someone answers.
            ref = render.page_ref(view.id, target.target, page.level, page.round)
            repo.enqueue(target.target, "message", {**dm, "ref": ref}, now)
        else:
            # Who is in the group is asked when the page goes out; the incident and the
            # channel let an empty group be said in the incident's thread.
            group_page = {
                "group": target.target,
                "incident": view.id,
                "level": page.level,
                "round": page.round,
                "reply_channel": self.channel,
                **dm,
            }
            repo.enqueue(target.target, "group_page", group_page, now)
        mention = render.page_mention(view, target, page.level, page.round, snapshot)
        repo.enqueue(
            self.channel,
            "incident_reply",
            {"incident": view.id, **mention},
            now,
            rollout=view.rollout,
        )

    def _edit(self, session: AsyncSession, row: IncidentRow, now: datetime) -> None:
        message = render.incident_message(view_of(row))
        Repository(session).enqueue(
            self.channel,
            "incident_update",
            {"incident": row.id, **message},
            now,
            rollout=row.rollout,
        )


def _bot_key(rollout: str, kind: str) -> str:
    """The key of the bot's own incidents: one live incident per rollout and kind."""
    return f"bot:{rollout}:{kind}"


def _refresh(row: IncidentRow, values: Mapping[str, Any]) -> None:
    """Mirror a Core UPDATE on the loaded object (it was written with synchronize off)."""
    for name, value in values.items():
        setattr(row, name, value)


def _done_text(verb: str, row: IncidentRow) -> str:
    return render.done_text(verb, view_of(row), format_duration(esc.SILENCE_DEFAULT))


def _silenced_text(row: IncidentRow, duration: timedelta) -> str:
    return render.done_text("silence", view_of(row), format_duration(duration))


def parse_incident_id(text: str) -> int | None:
    """`12`, `#12`, `INC-12` or `inc12` → 12."""
    cleaned = text.strip().lower().lstrip("#")
    for prefix in ("inc-", "inc"):
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix) :]
            break
    return int(cleaned) if cleaned.isdigit() and len(cleaned) < 10 else None
