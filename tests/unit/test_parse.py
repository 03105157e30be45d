"""The /rollout grammar: every verb, and bad input that gets a usable answer."""

from __future__ import annotations

import pytest

from bot.domain.rollout import Advance, Pause, Resume, Rollback, Start
from commands.parse import ParseError, Request, parse

KNOWN = {"phase-4", "search-v2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Request("help")),
        ("help", Request("help")),
        ("status", Request("status")),
        ("status phase-4", Request("status", "phase-4")),
        ("start phase-4", Request("start", "phase-4", Start())),
        ("start", Request("start", None, Start())),
        ("advance next", Request("advance", None, Advance(None))),
        ("advance 25", Request("advance", None, Advance(25))),
        ("advance 25%", Request("advance", None, Advance(25))),
        ("advance 25 phase-4", Request("advance", "phase-4", Advance(25))),
        ("advance phase-4 25", Request("advance", "phase-4", Advance(25))),
        ("ADVANCE NEXT", Request("advance", None, Advance(None))),
        (
            "advance 50 phase-4 force canary noise",
            Request("advance", "phase-4", Advance(50, True, "canary noise")),
        ),
        ("pause", Request("pause", None, Pause(""))),
        (
            "pause waiting for the on-call to come back",
            Request("pause", None, Pause("waiting for the on-call to come back")),
        ),
        ("pause phase-4 lunch", Request("pause", "phase-4", Pause("lunch"))),
        ("resume", Request("resume", None, Resume())),
        ("resume phase-4", Request("resume", "phase-4", Resume())),
        ("rollback", Request("rollback", None, Rollback(0, ""))),
        (
            "rollback to 10 error budget burning",
            Request("rollback", None, Rollback(10, "error budget burning")),
        ),
        ("rollback phase-4 to 0 bad", Request("rollback", "phase-4", Rollback(0, "bad"))),
        ("rollback phase-4 p95 high", Request("rollback", "phase-4", Rollback(0, "p95 high"))),
        ("ack", Request("ack")),
        ("ack INC-12", Request("ack", incident="INC-12")),
        ("history", Request("history")),
        ("history search-v2", Request("history", "search-v2")),
    ],
)
def test_grammar(text: str, expected: Request) -> None:
    assert parse(text, KNOWN) == expected


@pytest.mark.parametrize(
    ("text", "problem", "hint"),
    [
        ("advnce 25", "`advnce` is not a /rollout command", "Did you mean `/rollout advance"),
        ("deploy", "`deploy` is not a /rollout command", "/rollout help"),
        ("advance", "Say how far to advance", "Usage: `/rollout advance"),
        ("advance lots", "`lots` is not a percent", "Usage"),
        ("advance 2.5", "`2.5` is not a percent", "Usage"),
        ("advance -5", "`-5` is not a percent", "Usage"),
        ("advance 25 phse-4", "`phse-4` is not a rollout name", "Did you mean `phase-4`?"),
        ("advance 25 nope", "`nope` is not a rollout name", "Known rollouts: `phase-4`"),
        ("advance 25 force", "A forced advance needs a reason", "Usage"),
        ("start nope", "`nope` is not a rollout name", "Known rollouts"),
        ("status nope", "`nope` is not a rollout name", "Known rollouts"),
        ("resume phase-4 now", "`now` is not a rollout name", "Usage: `/rollout resume"),
        ("rollback to", "`to` needs a percent", "Usage"),
        ("rollback to ten", "`ten` is not a percent", "Usage"),
        ("rollback to 150", "`150` is not a percent between 0 and 100", "Usage"),
        ("ack one two", "at most one incident", "Usage: `/rollout ack"),
        ("pause " + "x" * 2100, "the limit is 2000", "Shorten"),
    ],
)
def test_mistakes_say_what_was_wrong_and_what_to_type(text: str, problem: str, hint: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(text, KNOWN)
    assert problem in caught.value.problem
    assert hint in caught.value.hint
