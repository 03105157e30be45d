"""The /rollout grammar: every verb, and bad input that gets a usable answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.rollout import Advance, Pause, Resume, Rollback, Start
from bot.errors import ParseError
from commands.parse import Request, help_text, parse

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
            "pause -- waiting for the on-call to come back",
            Request("pause", None, Pause("waiting for the on-call to come back")),
        ),
        (
            'pause "waiting for the on-call"',
            Request("pause", None, Pause("waiting for the on-call")),
        ),
        (
            "pause “waiting for the on-call”",
            Request("pause", None, Pause("waiting for the on-call")),
        ),
        ("pause --", Request("pause", None, Pause(""))),
        ("pause —  lunch", Request("pause", None, Pause("lunch"))),  # `--` as autocorrected
        ("pause phase-4 lunch", Request("pause", "phase-4", Pause("lunch"))),
        ("pause phase-4 -- lunch", Request("pause", "phase-4", Pause("lunch"))),
        ('pause phase-4 "long lunch"', Request("pause", "phase-4", Pause("long lunch"))),
        ("pause PHASE-4 lunch", Request("pause", "phase-4", Pause("lunch"))),
        ("pause `phase-4` lunch", Request("pause", "phase-4", Pause("lunch"))),
        ('pause "phase-4", lunch', Request("pause", "phase-4", Pause("lunch"))),
        ("pause рhаse-4 lunch", Request("pause", "phase-4", Pause("lunch"))),  # Cyrillic р, а
        ("pause phase\u200b-4 lunch", Request("pause", "phase-4", Pause("lunch"))),
        ("pause phase-４ lunch", Request("pause", "phase-4", Pause("lunch"))),
        ("pause phase–4 lunch", Request("pause", "phase-4", Pause("lunch"))),  # en dash
        (
            "pause -- &lt;!channel&gt; R&amp;D says &lt;@U0BAD&gt;",  # as Slack sends it
            Request("pause", None, Pause("<!channel> R&D says <@U0BAD>")),
        ),
        ("status &lt;phase-4&gt;", Request("status", "phase-4")),
        ("resume", Request("resume", None, Resume())),
        ("resume phase-4", Request("resume", "phase-4", Resume())),
        ("rollback", Request("rollback", None, Rollback(0, ""))),
        (
            "rollback to 10 -- error budget burning",
            Request("rollback", None, Rollback(10, "error budget burning")),
        ),
        ("rollback -- p95 high", Request("rollback", None, Rollback(0, "p95 high"))),
        ('rollback to 10 "p95 high"', Request("rollback", None, Rollback(10, "p95 high"))),
        (
            "rollback to 10 phase-4 latency creeping up",
            Request("rollback", "phase-4", Rollback(10, "latency creeping up")),
        ),
        ("rollback phase-4 to 0 bad", Request("rollback", "phase-4", Rollback(0, "bad"))),
        ("rollback phase-4 p95 high", Request("rollback", "phase-4", Rollback(0, "p95 high"))),
        ("ack", Request("ack")),
        ("ack INC-12", Request("ack", incident="INC-12")),
        ("history", Request("history")),
        ("history search-v2", Request("history", "search-v2")),
        ("history SEARCH-V2", Request("history", "search-v2")),
        ("resume ＰＨＡＳＥ-４", Request("resume", "phase-4", Resume())),
        ("advance ѕearch-v2 25", Request("advance", "search-v2", Advance(25))),
        ("advance next “search-v2”", Request("advance", "search-v2", Advance(None))),
        ("silence 12 2h", Request("silence", incident="12", duration=timedelta(hours=2))),
        (
            "silence #12 1h30m -- deploy window",
            Request(
                "silence", incident="#12", duration=timedelta(minutes=90), reason="deploy window"
            ),
        ),
        (
            "silence 12 30m known noise",
            Request("silence", incident="12", duration=timedelta(minutes=30), reason="known noise"),
        ),
        ("unsilence INC-12", Request("unsilence", incident="INC-12")),
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
        ("advance 25 phse-4", "`phse-4` is not a rollout; did you mean `phase-4`?", "Usage"),
        ("advance phse-4 25", "`phse-4` is not a rollout; did you mean `phase-4`?", "Usage"),
        ("advance phse-4", "`phse-4` is not a rollout; did you mean `phase-4`?", "Usage"),
        ("advance 25 nope", "`nope` is not a rollout.", "Known rollouts: `phase-4`"),
        ("advance 25 force", "A forced advance needs a reason", "Usage"),
        ("advance 25 -- noise", "A reason goes after `force`", "Usage: `/rollout advance"),
        ("start nope", "`nope` is not a rollout.", "Known rollouts: `phase-4`, `search-v2`"),
        ("start serch-v2", "`serch-v2` is not a rollout; did you mean `search-v2`?", "Usage"),
        ("status nope", "`nope` is not a rollout.", "Known rollouts"),
        ("status phse-4", "did you mean `phase-4`?", "Usage: `/rollout status [NAME]`"),
        ("status -- why", "`/rollout status` takes no reason", "Usage"),
        ("history phse-4", "did you mean `phase-4`?", "Usage: `/rollout history [NAME]`"),
        ("resume phse-4", "did you mean `phase-4`?", "Usage: `/rollout resume [NAME]`"),
        ("resume phase-4 now", "takes nothing more (got `now`)", "Usage: `/rollout resume"),
        ("pause phse-4", "`phse-4` is not a rollout; did you mean `phase-4`?", "`--`"),
        ("pause phse-4 lunch", "did you mean `phase-4`?", "Known rollouts: `phase-4`"),
        ('pause "phse-4"', "did you mean `phase-4`?", "Usage: `/rollout pause"),
        (
            "pause waiting for the on-call",
            "`waiting` is not a rollout.",
            "A reason without a name goes after `--`: `/rollout pause -- waiting for on-call`",
        ),
        ("pause рhase-5", "`рhase-5` is not a rollout; did you mean `phase-4`?", "Usage"),
        ("pause phase-ж", "It has `ж` (CYRILLIC SMALL LETTER ZHE)", "Known rollouts"),
        ("pause \u202ephase-4", "It has U+202E (RIGHT-TO-LEFT OVERRIDE)", "Known rollouts"),
        ("pause `phse-4`", "`'phse-4'` is not a rollout", "Usage"),  # its backticks shown as '
        ('pause "waiting for', "opening quote has no closing one", "Usage"),
        ('pause "waiting a bit" for', "Nothing goes after the quoted reason (got `for`)", "Usage"),
        ("rollback nosuch", "`nosuch` is not a rollout.", "Known rollouts: `phase-4`"),
        ("rollback phse-4 to 10", "did you mean `phase-4`?", "Usage: `/rollout rollback"),
        ("rollback to 10 phse-4", "did you mean `phase-4`?", "Usage: `/rollout rollback"),
        (
            "rollback to 10 error budget burning",
            "`error` is not a rollout.",
            "`/rollout rollback to 10 -- error budget burning`",
        ),
        ("rollback to", "`to` needs a percent", "Usage"),
        ("rollback to ten", "`ten` is not a percent", "Usage"),
        ("rollback to 150", "`150` is not a percent between 0 and 100", "Usage"),
        ("ack one two", "at most one incident", "Usage: `/rollout ack"),
        ("silence", "Name the incident to silence", "Usage: `/rollout silence INCIDENT DURATION"),
        ("silence 12", "Say for how long", "Usage: `/rollout silence"),
        ("silence 12 2hr", "`2hr` is not a duration", "Usage: `/rollout silence"),
        ("silence 12 two-hours", "`two-hours` is not a duration", "Usage"),
        ("silence 12 30s", "from 1m to 7d; `30s` is 30s", "Usage"),
        ("silence 12 8d", "from 1m to 7d (resolve an incident that needs longer)", "Usage"),
        ("unsilence", "Name the incident to unsilence", "Usage: `/rollout unsilence INCIDENT`"),
        ("unsilence 12 now", "takes nothing more (got `now`)", "Usage: `/rollout unsilence"),
        ("pause " + "x" * 2100, "the limit is 2000", "Shorten"),
    ],
)
def test_mistakes_say_what_was_wrong_and_what_to_type(text: str, problem: str, hint: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(text, KNOWN)
    assert problem in caught.value.problem
    assert hint in caught.value.hint


def test_help_gives_the_grammar_and_where_a_reason_goes() -> None:
    text = help_text()
    assert "`/rollout pause [NAME] [-- REASON]`" in text
    assert "`/rollout rollback [NAME] [to PERCENT] [-- REASON]`" in text
    assert "Anything after NAME is the reason; without a NAME, the reason goes after `--`" in text


def test_the_name_is_always_the_configured_one() -> None:
    for typed in ("PHASE-4", "`phase-4`", "рhase-4", "phase\u200b-4", "phase-４", "phase–4"):
        for verb in ("status", "history", "resume", "start", "pause", "rollback"):
            assert parse(f"{verb} {typed}", KNOWN).name == "phase-4", (verb, typed)
        assert parse(f"advance next {typed}", KNOWN).name == "phase-4"
        assert parse(f"advance {typed} 25", KNOWN).name == "phase-4"
        assert parse(f"rollback to 10 {typed}", KNOWN).name == "phase-4"
