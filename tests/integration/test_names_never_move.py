"""Whatever is typed where a rollout's name goes, a word that is no rollout's name moves
nothing: generated commands through `Handler.handle`, against a real `RolloutService` on a
SQLite file, with one rollout active (so leaving its name out would act on it) and another
configured."""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SystemClock
from bot.config import parse_config
from bot.services.rollouts import Actor, RolloutService
from commands.handle import Handler
from storage.db import create_engine, migrate, reader, sessionmaker
from tests.conftest import TWO_ROLLOUTS

NAMES = ("phase-4", "search-v2")
LEAD = Actor("U0CORA", "slash")  # may do everything, a forced advance included
VERBS = ("status", "start", "advance", "pause", "resume", "rollback", "history")

# ------------------------------------------------------------------ words that are no name


def _typed(slack_text: str) -> str:
    """What was typed, from what Slack sent."""
    return slack_text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _skeleton(word: str) -> str | None:
    """The word's letters and digits, as plain ASCII; None when it has a letter or digit
    outside ASCII (a look-alike, perhaps: too close to call here)."""
    folded = unicodedata.normalize("NFKC", _typed(word)).casefold()
    if any(not ch.isascii() and ch.isalnum() for ch in folded):
        return None
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


NAME_SKELETONS = {"phase4", "searchv2"}
KEYWORDS = {"next", "to", "force", "--", "—", "–"}


def _plainly_no_name(word: str) -> bool:
    """Stripping marks and folding forms never adds or changes an ASCII letter or digit, so
    a word whose letters and digits spell no name's cannot be one."""
    typed = _typed(word)
    skeleton = _skeleton(word)
    return (
        skeleton is not None
        and skeleton not in NAME_SKELETONS
        and typed.lower() not in KEYWORDS
        and not typed.rstrip("%").isdigit()  # a percent, not a name
        and typed[:1] not in '"“„'  # opens a quoted reason
    )


_SPECIAL = [
    *"`'\"“”*_~()[]<>.,;:!?-‐‑–—−&#@|/\\",
    "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u200f",  # unseen
    "４", "Ｐ", "ｈ", "－", "ß", "é", "\u0301", "ж", "р", "а", "ѕ", "ν",  # forms and scripts
    "&lt;", "&gt;", "&amp;",  # as Slack escapes what was typed
]  # fmt: skip
junk_words = (
    st.lists(
        st.one_of(
            st.sampled_from("abcdefghijklmnopqrstuvwxyzPHASE0123456789"),
            st.sampled_from(_SPECIAL),
            st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
        ),
        min_size=1,
        max_size=14,
    )
    .map("".join)
    .filter(_plainly_no_name)
)

_LOOK_ALIKE = {"p": "р", "a": "а", "e": "е", "o": "о", "c": "с", "s": "ѕ", "h": "һ"}
_INSERTABLE = "abcdefghijklmnopqrstuvwxyz0123456789-"


@st.composite
def typo_words(draw: st.DrawFn) -> str:
    """A name with one slip (a letter dropped, added, changed or swapped), then typed or
    pasted the ways people do; it visibly spells the slip, not the name."""
    name = draw(st.sampled_from(NAMES))
    at = draw(st.integers(0, len(name) - 1))
    letter = draw(st.sampled_from(_INSERTABLE))
    slip = draw(st.sampled_from(["drop", "add", "change", "swap"]))
    if slip == "drop":
        word = name[:at] + name[at + 1 :]
    elif slip == "add":
        word = name[:at] + letter + name[at:]
    elif slip == "change":
        word = name[:at] + letter + name[at + 1 :]
    else:
        word = name[:at] + name[at + 1 : at + 2] + name[at] + name[at + 2 :]
    if word in NAMES or not word:
        word = name + letter + letter  # the slip changed nothing: slip further
    shown = "".join(
        draw(
            st.sampled_from(
                [ch, ch.upper(), _LOOK_ALIKE.get(ch, ch), chr(ord(ch) + 0xFEE0), ch + "\u200b"]
                if ch.isalnum()
                else [ch, "–", "‑", "−"]
            )
        )
        for ch in word
    )
    around = draw(
        st.sampled_from(["{}", "`{}`", '"{}",', "“{}”", "*{}*", "_{}_", "({})", "<{}>", "{}."])
    )
    return around.format(shown)


TAIL = [
    "phase-4", "search-v2", "lunch", "--", "to", "10", "force", "next", '"waiting', 'for"',
    "&lt;!channel&gt;", "R&amp;D", "waiting", "for", "on-call",
]  # fmt: skip


@st.composite
def commands_with_no_name(draw: st.DrawFn) -> str:
    """A command whose NAME position holds a word that is no rollout's name."""
    word = draw(st.one_of(typo_words(), junk_words))
    verb = draw(st.sampled_from(VERBS))
    tail = " ".join(draw(st.lists(st.sampled_from(TAIL), max_size=4)))
    target = draw(st.sampled_from(["next", "25", "50%", "100"]))
    percent = draw(st.sampled_from(["0", "10", "20"]))
    forms = {
        "advance": [
            f"advance {word} {target}",
            f"advance {target} {word}",
            f"advance {target} {word} force {tail or 'noise'}",
        ],
        "rollback": [
            f"rollback {word} {tail}",
            f"rollback {word} to {percent} {tail}",
            f"rollback to {percent} {word} {tail}",
        ],
    }.get(verb, [f"{verb} {word} {tail}"])
    return draw(st.sampled_from(forms)).strip()


# --------------------------------------------------------------------------------- the test


async def _bot(path: Path) -> tuple[AsyncEngine, RolloutService, Handler]:
    config = parse_config(TWO_ROLLOUTS)
    engine = create_engine(f"sqlite+aiosqlite:///{path / 'rollout-bot.db'}")
    await migrate(engine)
    service = RolloutService(
        sessionmaker(engine),
        config.specs(),
        config.channel,
        SystemClock(),
        reader=reader(engine),
    )
    await service.prepare()
    handler = Handler(service, config.roles)
    for text in ("start phase-4", "advance 25 force setting the scene"):  # phase-4 alone active
        assert (await handler.handle(text, LEAD)).ok, text
    return engine, service, handler


async def _versions(service: RolloutService) -> dict[str, tuple[str, int, int]]:
    return {n: (s.state.value, s.percent, s.version) for n, s in (await service.statuses()).items()}


def test_a_word_that_is_no_rollout_name_never_moves_a_rollout(tmp_path: Path) -> None:
    with asyncio.Runner() as runner:
        engine, service, handler = runner.run(_bot(tmp_path))
        try:
            before = runner.run(_versions(service))
            assert before == {"phase-4": ("progressing", 25, 2), "search-v2": ("pending", 0, 0)}

            @settings(
                max_examples=150,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(commands_with_no_name())
            def no_rollout_moves(text: str) -> None:
                reply = runner.run(handler.handle(text, LEAD))
                assert not reply.ok, (text, reply.text)
                assert "is not a rollout" in reply.text, (text, reply.text)
                assert runner.run(_versions(service)) == before, text

            no_rollout_moves()

            # The same commands with the name spelled right do act: the check above can fail.
            reply = runner.run(handler.handle("pause рhase-4 lunch", LEAD))
            assert reply.ok, reply.text
            assert runner.run(_versions(service))["phase-4"] == ("paused", 25, 3)
        finally:
            runner.run(engine.dispose())
