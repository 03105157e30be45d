"""Rollout names as people type them: what resolves, what never does, and the hint."""

from __future__ import annotations

import pytest

from commands.names import closest, odd_character, resolve

KNOWN = {"phase-4", "phase-1", "search-v2", "canary", "canary_"}


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("phase-4", "phase-4"),
        ("PHASE-4", "phase-4"),
        ("Phase-4", "phase-4"),
        ("`phase-4`", "phase-4"),
        ('"phase-4",', "phase-4"),
        ("“phase-4”", "phase-4"),
        ("*phase-4*", "phase-4"),
        ("_phase-4_", "phase-4"),
        ("~phase-4~", "phase-4"),
        ("(phase-4)", "phase-4"),
        ("[phase-4]", "phase-4"),
        ("<phase-4>", "phase-4"),
        ("phase-4.", "phase-4"),
        ("phase-4?!", "phase-4"),
        ("`phase-4`.", "phase-4"),
        ("рhаse-4", "phase-4"),  # Cyrillic р and а
        ("ΡΗΑSΕ-4", "phase-4"),  # Greek capitals
        ("ѕearch-v2", "search-v2"),  # Cyrillic dze
        ("search-ν2", "search-v2"),  # Greek nu
        ("phase\u200b-4", "phase-4"),  # zero-width space
        ("\ufeffphase-4\u2060", "phase-4"),
        ("pha\u00adse-4", "phase-4"),  # soft hyphen
        ("phase-４", "phase-4"),  # full-width digit
        ("ｐｈａｓｅ－４", "phase-4"),  # full-width letters and hyphen-minus
        ("phase–4", "phase-4"),  # en dash
        ("phase—4", "phase-4"),  # em dash
        ("phase‑4", "phase-4"),  # non-breaking hyphen
        ("phase−4", "phase-4"),  # minus sign
        ("canary_", "canary_"),  # a name as it stands wins over stripping its `_`
        ("canary", "canary"),
        ("canary.", "canary"),
    ],
)
def test_a_word_that_visibly_spells_a_name_resolves_to_it(typed: str, name: str) -> None:
    assert resolve(typed, KNOWN) == name


@pytest.mark.parametrize(
    "typed",
    [
        "phse-4",  # mistyped
        "phase-5",
        "phase4",
        "phase",
        "nosuch",
        "",
        "--",
        "рhase-5",  # a look-alike of a name that is not configured
        "phaѕe-4x",
        "phase-4\u0301",  # a combining accent: not what the name looks like
        "phaße-4",  # ß is not ss
        "\u202ephase-4",  # a right-to-left override: shown otherwise than spelled
        "phase\u200e-4",
        "phase-ж",
        "_canary_",  # `canary` in italics, or `canary_`: both are configured, so neither
    ],
)
def test_a_word_that_spells_no_name_resolves_to_nothing(typed: str) -> None:
    assert resolve(typed, KNOWN) is None


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("phase-4", "phase-4"),
        ("рhase-4", "phase-4"),
        ("PHASE-4", "phase-4"),
        ("phase-４", "phase-4"),
        ("phase-1", "phase-1"),
        ("рhase-1", "phase-1"),
        ("ｐhase-1", "phase-1"),
    ],
)
def test_a_look_alike_never_resolves_to_a_different_name(typed: str, meant: str) -> None:
    # phase-4 and phase-1 are both configured and differ in one digit.
    assert resolve(typed, {"phase-4", "phase-1"}) == meant


def test_names_that_differ_only_in_a_digit_never_meet() -> None:
    known = {"phase-4", "phase-1"}
    for digit in "023456789":
        for dash in "-‐‑‒–—―−":
            assert resolve(f"phase{dash}{digit}", known) in (None, f"phase-{digit}")
    assert resolve("phase-l", known) is None  # a Latin l is not a 1
    assert resolve("phase-Ι", known) is None  # nor is a Greek capital iota


def test_the_hint_is_the_nearest_name_but_is_never_acted_on() -> None:
    assert closest("phse-4", KNOWN) == "phase-4"
    assert closest("serch-v2", KNOWN) == "search-v2"
    assert closest("`serch-v2`,", KNOWN) == "search-v2"
    assert closest("zzz", KNOWN) is None
    assert resolve("phse-4", KNOWN) is None  # near is not equal


def test_the_odd_character_is_named_so_a_person_can_find_it() -> None:
    assert odd_character("phase-ж") == "`ж` (CYRILLIC SMALL LETTER ZHE)"
    assert odd_character("\u202ephase-4") == "U+202E (RIGHT-TO-LEFT OVERRIDE)"
    assert odd_character("phaße-4") == "`ß` (LATIN SMALL LETTER SHARP S)"
    assert odd_character("рhase-5") is None  # reads as plain phase-5: nothing odd to show
    assert odd_character("phse-4") is None
