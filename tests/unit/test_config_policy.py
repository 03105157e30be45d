"""`check-config` on the safety policy: each bad policy named with its field and line, and
each rollout's effective policy printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import check_config

GOOD = """\
timezone: Europe/Paris
roles:
  leads: [U0CORA, S0LEADS]
  operators: [U0FORGE]
  rollback: [U0SRE]
policy:
  two_person: {from_percent: 50, confirm_within: 20m}
  freeze:
    - {days: [sat, sun], reason: weekend}
    - {daily: "18:00-08:00", reason: nights}
    - {dates: [2026-12-24]}
rollouts:
  - {name: checkout, flag: checkout_v2, owners: [U0OWN]}
  - name: search
    flag: search_v2
    plan: fast
    policy: {freeze: []}
"""


def run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "rollout.yml"
    path.write_text(text, encoding="utf-8")
    code = check_config(str(path))
    out, err = capsys.readouterr()
    return code, out, err.replace(str(path), "FILE")


def test_each_rollout_prints_its_effective_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(tmp_path, GOOD, capsys)
    assert code == 0
    checkout, search = out.split("\nsearch:")
    assert "  may advance: U0CORA, S0LEADS, U0OWN (lead/owner)" in checkout
    assert "  may rollback: U0SRE (rollback)" in checkout
    assert "  two-person rule: steps to 50 % or more need a second person, within 20m" in checkout
    assert "  freeze window: 18:00-08:00 (nights) (Europe/Paris)" in checkout
    assert "  freeze window: 2026-12-24 (Europe/Paris)" in checkout
    assert "two-person rule: steps to 50 %" in search  # inherited
    assert "freeze window" not in search  # its own policy clears the windows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "policy:\n  freeze:\n    - {days: [sat, sunday, funday]}\n",
            "FILE:3: policy.freeze.0.days: unknown weekday 'funday'; "
            "use mon, tue, wed, thu, fri, sat, sun",
        ),
        (
            "policy:\n  freeze:\n    - {days: [mon, tue, wed, thu]}\n"
            "    - {days: [fri, sat, sun]}\n",
            "FILE:2: policy.freeze: the freeze windows together never end: "
            "no advance could ever happen",
        ),
        (
            'policy:\n  freeze:\n    - {daily: "18:00-18:00"}\n',
            "FILE:3: policy.freeze.0.daily: '18:00-18:00' never ends: its start and its end "
            "are the same time",
        ),
        (
            'policy:\n  freeze:\n    - {daily: "6pm-8am"}\n',
            "FILE:3: policy.freeze.0.daily: '6pm-8am' is not HH:MM-HH:MM, e.g. \"18:00-08:00\"",
        ),
        (
            "policy:\n  freeze:\n    - {reason: lunch}\n",
            "FILE:3: policy.freeze.0: a freeze window needs `days`, `dates` or `daily`",
        ),
        (
            "policy:\n  two_person: {from_percent: 80}\n"
            "plans:\n  small:\n    stages: [{percent: 5, soak: 1h}, {percent: 50, soak: 1h}]\n"
            "rollouts:\n  - {name: a, flag: a, plan: small}\n",
            "FILE:2: policy.two_person.from_percent: no stage of plan 'small' (rollout a) "
            "reaches 80 %: its highest is 50 %",
        ),
        (
            "roles:\n  leads: [cora]\n",
            "FILE:2: roles.leads.0: String should match pattern '^[UWS][A-Z0-9]{2,}$'",
        ),
    ],
)
def test_a_policy_that_cannot_be_right_is_refused_with_field_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    code, _, err = run(tmp_path, text, capsys)
    assert code == 1
    assert expected in err.splitlines(), err
