"""`/rollout rehearse [NAME] [over DURATION] [plan PLAN] [from DATE]`: the words after the
name, in any order, each keyword once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.durations import format_duration, parse_duration
from bot.errors import ParseError

USAGE = "/rollout rehearse [NAME] [over 7d] [plan PLAN] [from YYYY-MM-DD[THH:MM]]"
DEFAULT_OVER = timedelta(days=7)
KEYWORDS = ("over", "plan", "from")


@dataclass(frozen=True)
class RehearseArgs:
    over: timedelta = DEFAULT_OVER
    plan: str | None = None
    start: datetime | None = None  # naive: in the config's timezone


def is_keyword(word: str) -> bool:
    return word.lower() in KEYWORDS


def parse_rehearse_args(words: list[str]) -> RehearseArgs:
    """Raises ParseError naming the word that is wrong and what to type instead."""
    seen: dict[str, str] = {}
    words = list(words)
    while words:
        keyword = words.pop(0).lower()
        if keyword not in KEYWORDS:
            shown = keyword[:40].replace("`", "'")
            raise _fail(f"`{shown}` is not part of a rehearsal: say `over`, `plan` or `from`.")
        if keyword in seen:
            raise _fail(f"`{keyword}` is given twice.")
        if not words:
            raise _fail(f"`{keyword}` needs a value, e.g. `{_EXAMPLES[keyword]}`.")
        seen[keyword] = words.pop(0)
    over = DEFAULT_OVER
    if "over" in seen:
        try:
            over = parse_duration(seen["over"])
        except ValueError as exc:
            raise _fail(f"{exc}.") from None
        if over <= timedelta(0):
            raise _fail(f"A rehearsal covers some time: `over {format_duration(over)}` is none.")
    start = None
    if "from" in seen:
        try:
            start = datetime.fromisoformat(seen["from"])
        except ValueError:
            shown = seen["from"][:40].replace("`", "'")
            raise _fail(
                f"`{shown}` is not a date: write `2026-11-23` or `2026-11-23T09:00`."
            ) from None
    return RehearseArgs(over, seen.get("plan"), start)


_EXAMPLES = {"over": "over 7d", "plan": "plan fast", "from": "from 2026-11-23"}


def _fail(problem: str) -> ParseError:
    return ParseError(problem, f"Usage: `{USAGE}`.")
