"""The `/rollout` grammar, from text to a typed request, or to an error that says what to type.

status [NAME] | start NAME | advance PERCENT|next [NAME] [force REASON…]
pause [NAME] [-- REASON…] | resume [NAME] | rollback [NAME] [to PERCENT] [-- REASON…]
ack [INCIDENT] | silence INCIDENT DURATION [REASON…] | unsilence INCIDENT | history [NAME] | help

The first word after the verb (for `advance` also the one after PERCENT|next, for
`rollback` also the one after `to PERCENT`) is where a NAME goes. A word there must be a
configured name as `commands.names` reads it, or the command is refused: a mistyped name is
never taken for a reason, nor left out so that another rollout moves. After a name, the rest
is the reason; without one, the reason follows `--` or is quoted ("…" or “…”).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from bot.domain.durations import format_duration, parse_duration
from bot.domain.rollout import (
    Advance,
    Cancel,
    Command,
    Confirm,
    Pause,
    Resume,
    Rollback,
    Start,
)
from bot.errors import ParseError
from commands import names
from commands.rehearse_args import USAGE as REHEARSE_USAGE
from commands.rehearse_args import RehearseArgs, is_keyword, parse_rehearse_args

USAGE: dict[str, str] = {
    "status": "/rollout status [NAME]",
    "start": "/rollout start NAME [shadow]",
    "advance": "/rollout advance PERCENT|next [NAME] [force REASON]",
    "pause": "/rollout pause [NAME] [-- REASON]",
    "resume": "/rollout resume [NAME]",
    "rollback": "/rollout rollback [NAME] [to PERCENT] [-- REASON]",
    "confirm": "/rollout confirm [NAME]",
    "cancel": "/rollout cancel [NAME]",
    "freeze": "/rollout freeze REASON",
    "unfreeze": "/rollout unfreeze",
    "ack": "/rollout ack [INCIDENT]",
    "silence": "/rollout silence INCIDENT DURATION [REASON]",
    "unsilence": "/rollout unsilence INCIDENT",
    "history": "/rollout history [NAME]",
    "rehearse": REHEARSE_USAGE,
    "help": "/rollout help",
}
NOTES = (
    "NAME may be left out when exactly one rollout is active (for `start`, when only one is "
    "configured).",
    "Anything after NAME is the reason; without a NAME, the reason goes after `--`: "
    "`/rollout pause -- waiting for on-call`.",
    "`confirm` and `cancel` answer a step that needs a second person (the two-person rule); "
    "the one who asked cannot confirm it.",
    "`freeze` stops every advance of every rollout, typed or automatic, until `unfreeze` "
    "(leads only); pause, rollback and ack still work.",
    "`start NAME shadow` runs the plan against real metrics and says what it decides, but "
    "what the service is told does not change and nobody is paged.",
    "`rehearse` replays the plan and its gates over past metrics and says what would have "
    "happened; nothing changes.",
    "`silence 12 2h -- deploy window` stops the pages of incident 12 for 2 hours (and, with "
    "`alertmanager.url` configured, silences its alert group in Alertmanager); `unsilence 12` "
    "ends it.",
)
VERBS = tuple(USAGE)
MAX_TEXT = 2000
REASON_AFTER = "--"  # what starts a reason where a name could be
_SEPARATORS = frozenset({REASON_AFTER, "—", "–"})  # `--` as autocorrect may turn it
_OPEN_QUOTES = '"“„'
_CLOSE_QUOTES = '"”“'
SILENCE_SHORTEST = timedelta(minutes=1)
SILENCE_LONGEST = timedelta(days=7)
_REASON_EXAMPLE = {
    "pause": "/rollout pause -- waiting for on-call",
    "rollback": "/rollout rollback to 10 -- error budget burning",
}


@dataclass(frozen=True)
class Request:
    """A parsed command line. `command` is set for verbs that change a rollout; `name` is
    the configured name, however it was typed."""

    verb: str
    name: str | None = None
    command: Command | None = None
    incident: str | None = None
    reason: str = ""  # `freeze REASON`, `silence INCIDENT DURATION REASON`
    rehearse: RehearseArgs | None = None
    duration: timedelta | None = None  # `silence INCIDENT DURATION`


def parse(text: str, known_names: Collection[str]) -> Request:
    """Parse the text after `/rollout`. Raises ParseError for anything malformed."""
    text = unescape(text)
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
        raise ParseError(f"`{_shown(words[0])}` is not a /rollout command.", _verb_hint(verb))
    reader = _Args(verb, args, known_names)
    return _PARSERS[verb](reader)


def unescape(text: str) -> str:
    """Slack sends a command's text with `&`, `<` and `>` escaped; this is what was typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class _Args:
    """The words after the verb, consumed left to right."""

    def __init__(self, verb: str, words: list[str], known_names: Collection[str]) -> None:
        self.verb = verb
        self.words = words
        self.known = known_names

    def is_name(self, word: str) -> bool:
        return names.resolve(word, self.known) is not None

    def take_name(self) -> str:
        """The word in the NAME position, which must spell a configured name."""
        word = self.words[0]
        if word in _SEPARATORS:
            if self.verb == "advance":
                raise self.fail("A reason goes after `force`, only to force an advance.")
            raise self.fail(f"`/rollout {self.verb}` takes no reason.")
        name = names.resolve(word, self.known)
        if name is None:
            raise self.not_a_name(word)
        self.words.pop(0)
        return name

    def take_name_or_reason(self) -> tuple[str | None, str | None]:
        """In the NAME position of a verb that takes a reason: the name, or a reason after
        `--` or in quotes (then no name)."""
        word = self.words[0]
        if word in _SEPARATORS:
            self.words.pop(0)
            return None, self.rest()
        if _opens_quote(word):
            return None, self.quoted()
        return self.take_name(), None

    def take_keyword(self, keyword: str) -> bool:
        if self.words and self.words[0].lower() == keyword:
            self.words.pop(0)
            return True
        return False

    def keyword_next(self, keyword: str) -> bool:
        """The next word is `keyword`, and not also a rollout's name (the name wins)."""
        return (
            bool(self.words)
            and self.words[0].lower() == keyword
            and not self.is_name(self.words[0])
        )

    def rest(self) -> str:
        text = " ".join(self.words)
        self.words = []
        return text

    def reason(self) -> str:
        """The words after a name: the reason, with a leading `--` or its quotes taken off."""
        if self.words and self.words[0] in _SEPARATORS:
            self.words.pop(0)
        text = self.rest()
        if len(text) > 1 and text[0] in _OPEN_QUOTES and text[-1] in _CLOSE_QUOTES:
            return text[1:-1].strip()
        return text

    def quoted(self) -> str:
        """A reason in quotes, from the opening quote to the last closing one, at the end."""
        text = self.rest()
        end = max(text.rfind(q) for q in _CLOSE_QUOTES)
        if end < 1:
            raise self.fail("The reason's opening quote has no closing one.")
        after = text[end + 1 :].strip()
        if after:
            raise self.fail(f"Nothing goes after the quoted reason (got `{_shown(after)}`).")
        return text[1:end].strip()

    def done(self) -> None:
        if self.words:
            raise self.fail(
                f"`/rollout {self.verb}` takes nothing more (got `{_shown(' '.join(self.words))}`)."
            )

    def fail(self, problem: str) -> ParseError:
        return ParseError(problem, f"Usage: `{USAGE[self.verb]}`.")

    def not_a_name(self, word: str) -> ParseError:
        close = names.closest(word, self.known)
        problem = f"`{_shown(word)}` is not a rollout" + (
            f"; did you mean `{close}`?" if close else "."
        )
        odd = names.odd_character(word)
        if odd:
            problem += f" It has {odd}, which no rollout's name has."
        known = ", ".join(f"`{n}`" for n in sorted(self.known)) or "none configured"
        hint = f"Known rollouts: {known}. Usage: `{USAGE[self.verb]}`."
        example = _REASON_EXAMPLE.get(self.verb)
        if example:
            hint += f" A reason without a name goes after `--`: `{example}`."
        return ParseError(problem, hint)


def _opens_quote(word: str) -> bool:
    """The word opens a quote that it does not close: a quoted reason of several words.
    One quoted word (`"phase-4"`) is read as a name, as people paste them."""
    return word[:1] in _OPEN_QUOTES and not any(q in word[1:] for q in _CLOSE_QUOTES)


def _shown(text: str, limit: int = 60) -> str:
    """A typed word inside backticks in a reply: backticks of its own would end them."""
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_percent(word: str) -> int | None:
    cleaned = word.rstrip("%")
    if cleaned.isascii() and cleaned.isdigit():  # not "²", which isdigit() accepts
        return int(cleaned)
    return None


def _status(a: _Args) -> Request:
    name = a.take_name() if a.words else None
    a.done()
    return Request(a.verb, name)


def _start(a: _Args) -> Request:
    name = a.take_name() if a.words and not a.keyword_next("shadow") else None
    shadow = a.take_keyword("shadow")
    a.done()
    return Request("start", name, Start(shadow=shadow))


def _is_target(word: str) -> bool:
    return word.lower() == "next" or parse_percent(word) is not None


def _advance(a: _Args) -> Request:
    name = None
    if a.words and not _is_target(a.words[0]):
        first = a.words[0]
        # `advance NAME 25`: the word before a percent is in the NAME position; a lone
        # word is one too, when it is near a name. Otherwise it was meant as the percent.
        before_target = len(a.words) > 1 and _is_target(a.words[1])
        if before_target or a.is_name(first) or names.closest(first, a.known):
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
            raise a.fail(
                f"`{_shown(word)}` is not a percent; type a whole number such as `25`, or `next`."
            )
    if name is None and a.words and not a.keyword_next("force"):
        name = a.take_name()
    force = a.take_keyword("force")
    reason = a.rest() if force else ""
    a.done()
    if force and not reason:
        raise a.fail("A forced advance needs a reason, kept in the audit log.")
    return Request("advance", name, Advance(target, force, reason))


def _pause(a: _Args) -> Request:
    name, reason = a.take_name_or_reason() if a.words else (None, "")
    return Request("pause", name, Pause(a.reason() if reason is None else reason))


def _resume(a: _Args) -> Request:
    name = a.take_name() if a.words else None
    a.done()
    return Request("resume", name, Resume())


def _rollback(a: _Args) -> Request:
    name: str | None = None
    reason: str | None = None
    if a.words and not a.keyword_next("to"):
        name, reason = a.take_name_or_reason()
    to = 0
    if reason is None and a.take_keyword("to"):
        if not a.words:
            raise a.fail("`to` needs a percent, e.g. `to 10`.")
        word = a.words.pop(0)
        percent = parse_percent(word)
        if percent is None or percent > 100:
            raise a.fail(f"`{_shown(word)}` is not a percent between 0 and 100.")
        to = percent
        if name is None and a.words:  # `rollback to 10 phase-4` names it after the percent
            name, reason = a.take_name_or_reason()
    return Request("rollback", name, Rollback(to, a.reason() if reason is None else reason))


def _confirm(a: _Args) -> Request:
    name = a.take_name() if a.words else None
    a.done()
    return Request(a.verb, name, Confirm() if a.verb == "confirm" else Cancel())


def _freeze(a: _Args) -> Request:
    if a.words and a.is_name(a.words[0]):
        name = names.resolve(a.words[0], a.known)
        raise ParseError(
            "`/rollout freeze` stops every rollout at once and takes no name.",
            f"To stop only {name}, type `/rollout pause {name} -- REASON`; to stop every "
            "rollout, `/rollout freeze REASON`.",
        )
    if a.words and a.words[0] in _SEPARATORS:
        a.words.pop(0)
    reason = a.rest().strip()
    if not reason:
        raise a.fail("A freeze needs a reason, shown in every status and kept in the audit log.")
    return Request("freeze", reason=reason)


def _unfreeze(a: _Args) -> Request:
    a.done()
    return Request("unfreeze")


def _ack(a: _Args) -> Request:
    incident = a.words.pop(0) if a.words else None
    if a.words:
        raise a.fail(f"`ack` takes at most one incident id (got `{' '.join(a.words)}` too).")
    return Request("ack", incident=incident)


def _rehearse(a: _Args) -> Request:
    name = a.take_name() if a.words and not is_keyword(a.words[0]) else None
    return Request("rehearse", name, rehearse=parse_rehearse_args(a.words))


def _silence(a: _Args) -> Request:
    if not a.words:
        example = "12" if a.verb == "unsilence" else "12 2h"
        raise a.fail(f"Name the incident to {a.verb}, e.g. `/rollout {a.verb} {example}`.")
    incident = a.words.pop(0)
    if a.verb == "unsilence":
        a.done()
        return Request("unsilence", incident=incident)
    if not a.words:
        raise a.fail("Say for how long, e.g. `/rollout silence 12 2h`.")
    word = a.words.pop(0)
    try:
        duration = parse_duration(word)
    except ValueError:
        raise a.fail(
            f"`{_shown(word)}` is not a duration; write a number and a unit: 30m, 2h, 1d."
        ) from None
    if not SILENCE_SHORTEST <= duration <= SILENCE_LONGEST:
        longer = " (resolve an incident that needs longer)" if duration > SILENCE_LONGEST else ""
        raise a.fail(
            f"A silence lasts from {format_duration(SILENCE_SHORTEST)} to "
            f"{format_duration(SILENCE_LONGEST)}{longer}; `{_shown(word)}` is "
            f"{format_duration(duration)}."
        )
    return Request("silence", incident=incident, duration=duration, reason=a.reason())


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
    "confirm": _confirm,
    "cancel": _confirm,
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "ack": _ack,
    "rehearse": _rehearse,
    "silence": _silence,
    "unsilence": _silence,
    "help": _help,
}


def _verb_hint(verb: str) -> str:
    close = difflib.get_close_matches(verb, VERBS, n=1)
    if close:
        return f"Did you mean `{USAGE[close[0]]}`? Type `/rollout help` for every command."
    return "Type `/rollout help` for every command."


def help_text() -> str:
    return "\n".join([*(f"`{usage}`" for usage in USAGE.values()), *NOTES])
