"""One handler per `/rollout` verb: resolve the rollout, check the role, act, reply."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.domain.escalation import IncidentState
from bot.domain.policy import EmergencyFreeze, Policy, window_minute
from bot.domain.rollout import ACTIVE_STATES, Cancel, Confirm, RolloutStatus, state_words
from bot.errors import ParseError
from bot.render import blocks, incident_blocks
from bot.render.rehearsal_blocks import started_text
from bot.services.incidents import IncidentService, parse_incident_id
from bot.services.people import People
from bot.services.rehearsals import Ask, Reach, Rehearsals
from bot.services.rollouts import Actor, RolloutService
from bot.services.silences import Silences
from bot.services.status_snapshot import StatusSnapshot, StatusView
from commands.parse import Request, help_text, parse, unescape
from storage.db import unavailable

log = logging.getLogger(__name__)


_TRY_AGAIN = {
    "busy": "The bot's database is busy with another change right now, so nothing was "
    "done. Try again in a moment.",
    "full": "The bot's database cannot take a change right now (its disk is full), so "
    "nothing was done. Try again once there is space; the team running the bot is told in "
    "its log.",
}


@dataclass(frozen=True)
class Reply:
    """The immediate answer to a command, shown only to the person who typed it."""

    text: str
    ok: bool = True
    blocks: list[dict[str, Any]] = field(default_factory=list)
    verb: str = "unknown"


class Handler:
    def __init__(
        self,
        service: RolloutService,
        policy: Policy,
        incidents: IncidentService | None = None,
        people: People | None = None,
        rehearsals: Rehearsals | None = None,
        silences: Silences | None = None,
        snapshot: StatusSnapshot | None = None,
    ) -> None:
        """`snapshot`: what `status` shows, kept in memory while the change stamp stays
        the same (None: read from the database for each answer)."""
        self.snapshot = snapshot
        self._shown: dict[tuple[int, str | None, datetime], Reply] = {}
        self.service = service
        self.policy = policy  # the config's, for what concerns every rollout (the freeze)
        self.incidents = incidents
        self.silences = silences
        self.people = people or People(None, service.clock)
        self.rehearsals = rehearsals

    def reads_only(self, text: str) -> bool:
        """Whether `text` is a command that changes nothing and reads only what this bot
        keeps in memory (`status`, `help`, and anything that does not parse), so that its
        answer can be given without a listener's machinery."""
        try:
            return parse(text, self.service.specs).verb in READS_ONLY
        except ParseError:
            return True

    def answer_from_memory(self, text: str) -> Reply | None:
        """`handle`'s answer to `text` when it needs nothing but memory: `help`, a command
        that does not parse, and `status` while its snapshot is current. None otherwise."""
        try:
            request = parse(text, self.service.specs)
        except ParseError as exc:
            return _unparsed(exc)
        if request.verb == "help":
            return _HELP
        if request.verb != "status" or self.snapshot is None:
            return None
        view = self.snapshot.current()
        return None if view is None else self._status_of(view, request.name)

    async def handle(
        self,
        text: str,
        actor: Actor,
        *,
        dedup_key: str | None = None,
        expected_version: int | None = None,
        reach: Reach | None = None,
    ) -> Reply:
        """`reach`: where an answer that comes later (a rehearsal's) goes."""
        try:
            request = parse(text, self.service.specs)
        except ParseError as exc:
            return _unparsed(exc)
        handler = _HANDLERS.get(request.verb, Handler._act)
        try:
            if request.verb == "rehearse":
                reply = await self._rehearse(request, actor, reach)
            else:
                reply = await handler(self, request, actor, dedup_key, expected_version)
        except Exception as exc:  # the person who typed it still gets an answer, never silence
            if (why := unavailable(exc)) is not None:
                log.warning("/rollout %s: the database is %s: %s", text, why, exc)
                return Reply(_TRY_AGAIN[why], ok=False, verb=request.verb)
            log.exception("/rollout %s failed", text)
            return Reply(
                f"The bot could not finish `/rollout {blocks.escape(unescape(text).strip())}`: "
                "an error on its side, "
                "now in its log. Check `/rollout status` before trying again.",
                ok=False,
                verb=request.verb,
            )
        return Reply(reply.text, reply.ok, reply.blocks, request.verb)

    async def answer_request(
        self, name: str, command: Confirm | Cancel, actor: Actor, *, dedup_key: str
    ) -> Reply:
        """A Confirm or Cancel button: the request it names, on the rollout it names."""
        if name not in self.service.specs:
            return Reply(blocks.unknown_rollout_click_text(name), ok=False, verb=command.verb)
        request = Request(command.verb, name, command)
        reply = await self._act(request, actor, dedup_key, None)
        return Reply(reply.text, reply.ok, reply.blocks, command.verb)

    async def _freeze(self, request: Request, actor: Actor, *_: Any) -> Reply:
        actor = await self._with_roles(actor, self.policy)
        if request.verb == "freeze":
            outcome = await self.service.freeze(actor, self.policy, request.reason)
        else:
            outcome = await self.service.unfreeze(actor, self.policy)
        return Reply(outcome.text, outcome.ok)

    async def _with_roles(self, actor: Actor, policy: Policy) -> Actor:
        person = await self.people.person(actor.user, policy)
        return replace(actor, roles=person.roles)

    async def _help(self, request: Request, actor: Actor, *_: Any) -> Reply:
        return _HELP

    async def _status(self, request: Request, actor: Actor, *_: Any) -> Reply:
        now = self.service.clock.now()
        if self.snapshot is None:
            statuses = await self.service.statuses()
            freeze = await self.service.emergency()
            return self._status_reply(request.name, statuses, freeze, now)
        return self._status_of(await self.snapshot.view(), request.name)

    def _status_of(self, view: StatusView, name: str | None) -> Reply:
        now = self.service.clock.now()
        # The same stamp, the same rollout asked for, the same minute: the same answer.
        key = (view.stamp, name, window_minute(now))
        shown = self._shown.get(key)
        if shown is None:
            if len(self._shown) >= _SHOWN_KEPT:
                self._shown.clear()
            reply = self._status_reply(name, view.statuses, view.freeze, now)
            shown = self._shown[key] = replace(reply, verb="status")
        return shown

    def _status_reply(
        self,
        name: str | None,
        statuses: dict[str, RolloutStatus],
        freeze: EmergencyFreeze | None,
        now: datetime,
    ) -> Reply:
        names = [name] if name else list(self.service.specs)
        specs = [self.service.specs[n] for n in names]
        message = blocks.status_message(specs, statuses, freeze=freeze, now=now)
        return Reply(message["text"], blocks=message["blocks"])

    async def _history(self, request: Request, actor: Actor, *_: Any) -> Reply:
        statuses = await self.service.statuses()
        name = request.name or self._implied("history", statuses)
        if name is None:
            return Reply(
                "Name the rollout whose history you want.\n" + _usage("history", statuses),
                ok=False,
            )
        events = await self.service.history(name)
        message = blocks.history_message(name, events)
        return Reply(message["text"], blocks=message["blocks"])

    async def _ack(self, request: Request, actor: Actor, *_: Any) -> Reply:
        if self.incidents is None:
            return Reply("There is no open incident to acknowledge.", ok=False)
        if request.incident is not None:
            incident_id = parse_incident_id(request.incident)
            if incident_id is None:
                return Reply(
                    f"`{request.incident}` is not an incident number.\n"
                    "Type `/rollout ack` for the one open incident, or `/rollout ack 12`.",
                    ok=False,
                )
        else:
            live = await self.incidents.live()
            waiting = [v for v in live if v.state is not IncidentState.ACKNOWLEDGED]
            if not waiting:
                acked = len(live) - len(waiting)
                extra = f" ({acked} acknowledged already)" if acked else ""
                return Reply(f"There is no open incident to acknowledge{extra}.", ok=False)
            if len(waiting) > 1:
                return Reply(
                    incident_blocks.open_incidents_text(waiting)
                    + f"\nName one, e.g. `/rollout ack {waiting[0].id}`.",
                    ok=False,
                )
            incident_id = waiting[0].id
        answer = await self.incidents.acknowledge(incident_id, actor.user)
        return Reply(answer.text, answer.ok)

    async def _rehearse(self, request: Request, actor: Actor, reach: Reach | None) -> Reply:
        """Answers at once; the rehearsal runs in the background and its result follows."""
        rehearsals = self.rehearsals
        if rehearsals is None:
            return Reply("Rehearsals are not available in this bot.", ok=False)
        statuses = await self.service.statuses()
        name = request.name or self._implied("rehearse", statuses)
        if name is None:
            return Reply(_which_one("rehearse", statuses, self.service.specs), ok=False)
        assert request.rehearse is not None
        args = request.rehearse
        ask = Ask(name, args.over, args.plan, args.start)
        problem = rehearsals.problem(ask)
        if problem:
            return Reply(problem, ok=False)
        to = reach or Reach(actor.user, self.service.channel)
        rehearsals.in_background(lambda: rehearsals.answer(self.service, ask, to))
        spec = self.service.specs[name]
        start, end = rehearsals.period(ask)
        return Reply(started_text(name, end - start, len(rehearsals.rules_of(spec))))

    async def _silence(self, request: Request, actor: Actor, *_: Any) -> Reply:
        if self.silences is None:
            return Reply("There is no incident to silence.", ok=False)
        incident_id = parse_incident_id(request.incident or "")
        if incident_id is None:
            return Reply(
                f"`{blocks.escape(request.incident or '')}` is not an incident number.\n"
                f"Type `/rollout {request.verb} 12`, with the number from the incident's message.",
                ok=False,
            )
        if request.verb == "unsilence":
            answer = await self.silences.unsilence(incident_id, actor.user)
        else:
            assert request.duration is not None  # the parser requires one
            answer = await self.silences.silence(
                incident_id, actor.user, request.duration, request.reason
            )
        return Reply(answer.text, answer.ok)

    async def _act(
        self,
        request: Request,
        actor: Actor,
        dedup_key: str | None,
        expected_version: int | None,
    ) -> Reply:
        assert request.command is not None
        statuses = await self.service.statuses()
        name = request.name or self._implied(request.verb, statuses)
        if name is None:
            return Reply(_which_one(request.verb, statuses, self.service.specs), ok=False)
        actor = await self._with_roles(actor, self.service.specs[name].policy)
        if expected_version is None and not isinstance(request.command, Confirm | Cancel):
            # What the actor saw when typing: if someone moves it first, they are told.
            expected_version = statuses[name].version
        outcome = await self.service.act(
            name,
            request.command,
            actor,
            expected_version=expected_version,
            dedup_key=dedup_key,
        )
        return Reply(outcome.text, outcome.ok)

    def _implied(self, verb: str, statuses: dict[str, RolloutStatus]) -> str | None:
        """The rollout a command without a name means: the only one configured (to start
        it or read its history), else the only active one. Starting one of several is a
        choice the person names."""
        if verb in ("start", "history", "rehearse") and len(self.service.specs) == 1:
            return next(iter(self.service.specs))
        if verb == "start":
            return None
        if verb in ("confirm", "cancel"):
            asked = [n for n, s in statuses.items() if s.pending is not None]
            return asked[0] if len(asked) == 1 else None
        return _only_active(statuses)


def _unparsed(exc: ParseError) -> Reply:
    # it may quote what was typed: shown, never a mention
    return Reply(blocks.escape(f"{exc.problem}\n{exc.hint}"), ok=False)


_HELP = Reply("*/rollout* moves a feature through its stages.\n" + help_text(), verb="help")

# Verbs that change nothing and read only what the bot keeps in memory.
READS_ONLY = frozenset({"status", "help"})
_SHOWN_KEPT = 256  # status answers kept for the current stamp and minute, one per name asked

Verb = Callable[[Handler, Request, Actor, "str | None", "int | None"], Awaitable[Reply]]
_HANDLERS: dict[str, Verb] = {
    "help": Handler._help,
    "status": Handler._status,
    "history": Handler._history,
    "ack": Handler._ack,
    "silence": Handler._silence,
    "unsilence": Handler._silence,
    "freeze": Handler._freeze,
    "unfreeze": Handler._freeze,
}


def _only_active(statuses: dict[str, RolloutStatus]) -> str | None:
    active = [n for n, s in statuses.items() if s.state in ACTIVE_STATES]
    return active[0] if len(active) == 1 else None


def _which_one(verb: str, statuses: dict[str, RolloutStatus], specs: Any) -> str:
    active = {n: s for n, s in statuses.items() if s.state in ACTIVE_STATES}
    if not specs:
        return "No rollouts are configured; add one under `rollouts:` in the config."
    if verb in ("confirm", "cancel"):
        asked = sorted(n for n, s in statuses.items() if s.pending is not None)
        if not asked:
            return "No step is waiting for a second person. Type `/rollout status` to see why."
        listed = ", ".join(f"`{n}`" for n in asked)
        return f"Steps wait for a second person on {listed}. Name one: `/rollout {verb} NAME`."
    if verb == "start" or not active:
        lead = "No rollout is active." if verb != "start" else "Name the rollout to start."
        return f"{lead}\n{_usage(verb, statuses)}"
    listed = ", ".join(f"`{n}` ({state_words(s)})" for n, s in sorted(active.items()))
    return (
        f"{len(active)} rollouts are active: {listed}. Name which one, e.g. "
        f"`/rollout {verb} {_example_args(verb)}{next(iter(sorted(active)))}`."
    )


def _usage(verb: str, statuses: dict[str, RolloutStatus]) -> str:
    known = ", ".join(f"`{n}` ({state_words(s)})" for n, s in sorted(statuses.items()))
    return f"Known rollouts: {known}. Type `/rollout {verb} NAME`."


def _example_args(verb: str) -> str:
    return "next " if verb == "advance" else ""
