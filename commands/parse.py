"""The `/rollout` grammar, from text to a typed request, or to an error that says what to type.

status [NAME] | start NAME | advance PERCENT|next [NAME] [force REASON…]
pause [NAME] [REASON…] | resume [NAME] | rollback [NAME] [to PERCENT] [REASON…]
ack [INCIDENT] | history [NAME] | help
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass

from bot.domain.rollout import Advance, Command, Pause, Resume, Rollback, Start

USAGE: dict[str, str] = {
    "status": "/rollout status [NAME]",
    "start": "/rollout start NAME",
    "advance": "/rollout advance PERCENT|next [NAME] [force REASON]",
    "pause": "/rollout pause [NAME] [REASON]",
    "resume": "/rollout resume [NAME]",
    "rollback": "/rollout rollback [NAME] [to PERCENT] [REASON]",
    "ack": "/rollout ack [INCIDENT]",
    "history": "/rollout history [NAME]",
    "help": "/rollout help",
}
VERBS = tuple(USAGE)
MAX_TEXT = 2000


@dataclass(frozen=True)
class Request:
    """A parsed command line. `command` is set for verbs that change a rollout."""

    verb: str
    name: str | None = None
    command: Command | None = None
    incident: str | None = None


@dataclass(frozen=True)
class ParseError(Exception):
    problem: str
    hint: str

    def __str__(self) -> str:
        return f"{self.problem} {self.hint}"


def parse(text: str, known_names: Collection[str]) -> Request:
    """Parse the text after `/rollout`. Raises ParseError for anything malformed."""
    if len(text) > MAX_TEXT:
        raise ParseError(
            f"That command is {len(text)} characters long; the limit is {MAX_TEXT}.",
            "Shorten the reason.",
        )
    words = text.split()
    if not words:
        return Request("help")
    verb, args = words[0].lower(), words[1:]
    if verb not in USAGE:
        raise ParseError(f"`{words[0]}` is not a /rollout command.", _verb_hint(verb))
    reader = _Args(verb, args, known_names)
    return _PARSERS[verb](reader)


class _Args:
    """The words after the verb, consumed left to right."""

    def __init__(self, verb: str, words: list[str], known_names: Collection[str]) -> None:
        self.verb = verb
        self.words = words
        self.known = known_names

    def take_name(self) -> str | None:
        if self.words and self.words[0] in self.known:
            return self.words.pop(0)
        return None

    def take_keyword(self, keyword: str) -> bool:
        if self.words and self.words[0].lower() == keyword:
            self.words.pop(0)
            return True
        return False

    def rest(self) -> str:
        text = " ".join(self.words)
        self.words = []
        return text

    def done(self) -> None:
        if self.words:
            extra = self.words[0]
            raise ParseError(f"`{extra}` is not a rollout name.", self._name_hint(extra))

    def fail(self, problem: str) -> ParseError:
        return ParseError(problem, f"Usage: `{USAGE[self.verb]}`.")

    def _name_hint(self, word: str) -> str:
        close = difflib.get_close_matches(word, list(self.known), n=1)
        if close:
            return f"Did you mean `{close[0]}`? Usage: `{USAGE[self.verb]}`."
        known = ", ".join(f"`{n}`" for n in sorted(self.known)) or "none configured"
        return f"Known rollouts: {known}. Usage: `{USAGE[self.verb]}`."


def parse_percent(word: str) -> int | None:
    cleaned = word.rstrip("%")
    if cleaned.isascii() and cleaned.isdigit():  # not "²", which isdigit() accepts
        return int(cleaned)
    return None


def _status(a: _Args) -> Request:
    name = a.take_name()
    a.done()
    return Request(a.verb, name)


def _start(a: _Args) -> Request:
    name = a.take_name()
    a.done()  # anything left is an unknown name: say so and list the known ones
    return Request("start", name, Start())


def _advance(a: _Args) -> Request:
    name = a.take_name()
    if not a.words:
        raise a.fail("Say how far to advance: a percent such as `25`, or `next`.")
    word = a.words.pop(0)
    target: int | None
    if word.lower() == "next":
        target = None
    else:
        target = parse_percent(word)
        if target is None:
            raise a.fail(f"`{word}` is not a percent; type a whole number such as `25`, or `next`.")
    name = name or a.take_name()
    force = a.take_keyword("force")
    reason = a.rest() if force else ""
    a.done()
    if force and not reason:
        raise a.fail("A forced advance needs a reason, kept in the audit log.")
    return Request("advance", name, Advance(target, force, reason))


def _pause(a: _Args) -> Request:
    name = a.take_name()
    return Request("pause", name, Pause(a.rest()))


def _resume(a: _Args) -> Request:
    name = a.take_name()
    a.done()
    return Request("resume", name, Resume())


def _rollback(a: _Args) -> Request:
    name = a.take_name()
    to = 0
    if a.take_keyword("to"):
        if not a.words:
            raise a.fail("`to` needs a percent, e.g. `to 10`.")
        word = a.words.pop(0)
        percent = parse_percent(word)
        if percent is None or percent > 100:
            raise a.fail(f"`{word}` is not a percent between 0 and 100.")
        to = percent
    name = name or a.take_name()  # `rollback to 10 phase-4` names it after the percent
    return Request("rollback", name, Rollback(to, a.rest()))


def _ack(a: _Args) -> Request:
    incident = a.words.pop(0) if a.words else None
    if a.words:
        raise a.fail(f"`ack` takes at most one incident id (got `{' '.join(a.words)}` too).")
    return Request("ack", incident=incident)


def _help(a: _Args) -> Request:
    return Request("help")


_PARSERS = {
    "status": _status,
    "history": _status,
    "start": _start,
    "advance": _advance,
    "pause": _pause,
    "resume": _resume,
    "rollback": _rollback,
    "ack": _ack,
    "help": _help,
}


def _verb_hint(verb: str) -> str:
    close = difflib.get_close_matches(verb, VERBS, n=1)
    if close:
        return f"Did you mean `{USAGE[close[0]]}`? Type `/rollout help` for every command."
    return "Type `/rollout help` for every command."


def help_text() -> str:
    return "\n".join(f"`{usage}`" for usage in USAGE.values())
