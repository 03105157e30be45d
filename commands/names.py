"""Rollout names as people type them: the one configured name a word visibly spells, or none.

People paste names from messages and docs, so a word may carry what Slack or a keyboard
adds: capitals, backticks and quotes around it, a comma after it, a zero-width space, a
full-width digit, an en dash for the hyphen, a Cyrillic `р` where a Latin `p` was meant.
`resolve` sees through exactly those and nothing else: the word it returns is the one a
reader sees. It never guesses (no edit distance, no prefixes); `closest` does, for a hint.

Pure: no I/O, no config. Names are canonical as the config checks them
(`^[a-z0-9][a-z0-9_.-]{0,62}$`).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Collection

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")

# Characters that reorder what is shown: a word carrying one may read as another name than
# the one its letters spell, so it never matches.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
# Letters of other scripts drawn like Latin ones (only those a reader cannot tell apart).
_LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "А": "a", "В": "b", "с": "c", "С": "c", "ԁ": "d", "е": "e", "Е": "e",
        "һ": "h", "Н": "h", "і": "i", "І": "i", "ј": "j", "Ј": "j", "К": "k", "ӏ": "l",
        "М": "m", "о": "o", "О": "o", "р": "p", "Р": "p", "ԛ": "q", "ѕ": "s", "Ѕ": "s",
        "Т": "t", "ԝ": "w", "х": "x", "Х": "x", "у": "y", "У": "y",
        # Greek
        "α": "a", "Α": "a", "Β": "b", "Ε": "e", "Η": "h", "ι": "i", "Ι": "i", "κ": "k",
        "Κ": "k", "Μ": "m", "Ν": "n", "ν": "v", "ο": "o", "Ο": "o", "ρ": "p", "Ρ": "p",
        "τ": "t", "Τ": "t", "υ": "u", "Υ": "y", "Χ": "x", "Ζ": "z", "ϲ": "c", "ϳ": "j",
        # Latin letters outside ASCII
        "ɡ": "g",
    }
)  # fmt: skip
# Marks pasted around a word: quotes, backticks, mrkdwn emphasis, brackets.
_AROUND = "`'\"‘’‚‛“”„‟«»‹›*_~()[]{}<>"
_AFTER = ".,;:!?"


def resolve(word: str, known: Collection[str]) -> str | None:
    """The configured name `word` spells, or None when it spells none (or more than one)."""
    if any(ch in _BIDI for ch in word):
        return None
    letters = _letters(word)
    if letters in known and _is_name(letters):
        return letters  # a name as it stands, before any stripping: `canary_` not `canary`
    hits = {f for f in _forms(letters) if f in known and _is_name(f)}
    return hits.pop() if len(hits) == 1 else None


def closest(word: str, known: Collection[str]) -> str | None:
    """The configured name nearest to `word`, for a "did you mean" hint; never to act on."""
    close = difflib.get_close_matches(normalise(word), sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def normalise(word: str) -> str:
    """The word as `resolve` compares it, with every mark around it stripped."""
    return _forms(_letters(word))[-1]


def odd_character(word: str) -> str | None:
    """The first character that keeps `word` from being any name, said so a person can find
    it: `ж` (CYRILLIC SMALL LETTER ZHE), or U+202E (RIGHT-TO-LEFT OVERRIDE) when unseen."""
    for ch in word:
        if ch in _BIDI:
            return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character')})"
    for ch in normalise(word):
        if not (ch.isascii() and (ch.isalnum() or ch in "_.-")):
            name = unicodedata.name(ch, f"U+{ord(ch):04X}")
            if unicodedata.category(ch)[0] in "CZM":
                return f"U+{ord(ch):04X} ({name})"
            return f"`{ch}` ({name})"
    return None


def _letters(word: str) -> str:
    """Full-width and styled forms to ASCII, invisible characters out, dashes to `-`,
    look-alike letters to the Latin ones, lower case."""
    text = unicodedata.normalize("NFKC", word)
    text = "".join(ch for ch in text if ch not in _INVISIBLE and unicodedata.category(ch) != "Cf")
    text = text.translate(_DASHES).translate(_LOOK_ALIKES)
    # Case-folding that turns one letter into several (ß → ss, İ → i̇) is not what was typed.
    return "".join(folded if len(folded := ch.casefold()) == 1 else ch for ch in text)


def _forms(text: str) -> list[str]:
    """`text`, then each shorter form as the marks around it come off, outermost first."""
    forms = [text]
    current = text
    while True:
        stripped = current.lstrip(_AROUND).rstrip(_AROUND.replace("_", "") + _AFTER[1:])
        if stripped == current and current[-1:] in ("_", "."):
            stripped = current[:-1]  # also a name's own character: tried both ways
        if stripped == current:
            return forms
        current = stripped
        forms.append(current)


def _is_name(text: str) -> bool:
    return text.isascii() and NAME.fullmatch(text) is not None
