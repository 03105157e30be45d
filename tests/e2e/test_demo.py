"""`rollout-bot demo` as a newcomer runs it: the installed command, its transcript, in order."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAMP = re.compile(r"^\[Day (\d+) (\d\d):(\d\d)\]", re.MULTILINE)
INTERACTIVE = "The bot keeps running"


def rollout_bot() -> str:
    """The console script installed beside this interpreter, as a user types it."""
    script = shutil.which("rollout-bot", path=str(Path(sys.executable).parent))
    assert script is not None, f"rollout-bot is not installed beside {sys.executable}"
    return script


def run_demo(*args: str, stdin: str | None = None, timeout: float = 120) -> tuple[str, float]:
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    result = subprocess.run(
        [rollout_bot(), "demo", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, elapsed


def assert_in_order(transcript: str, *parts: str) -> None:
    at = 0
    for part in parts:
        found = transcript.find(part, at)
        assert found >= 0, f"{part!r} not found after position {at}:\n{transcript[at:at + 3000]}"
        at = found + len(part)


def assert_stamps_never_go_backwards(transcript: str) -> None:
    stamps = [(m.group(0), (int(m[1]), m[2], m[3])) for m in STAMP.finditer(transcript)]
    assert len(stamps) > 10, transcript[:3000]
    for (before, earlier), (after, later) in itertools.pairwise(stamps):
        assert earlier <= later, f"{after} printed after {before}:\n{transcript}"


@pytest.fixture(scope="module")
def breach_run() -> tuple[str, float]:
    """One run of the default demo, then two commands typed in --interactive mode."""
    return run_demo(
        "--interactive", "--user", "U0HUDSON",
        stdin="/rollout status\n/rollout start phase-4\nexit\n",
    )


def test_the_demo_runs_the_genesis_rollout_to_a_rollback_and_an_acknowledged_page(
    breach_run: tuple[str, float],
) -> None:
    output, elapsed = breach_run
    assert elapsed < 90
    transcript = output.split(INTERACTIVE, 1)[0]
    assert "dashboard http://127.0.0.1:" in transcript
    assert "config    genesis-phase4.yml (built-in example) ·" in transcript
    assert_in_order(
        transcript,
        "Cora in #deployments: /rollout start phase-4",
        "@Cora started phase-4 0 % → 5 %",
        "Daily rollout summary · Tue 03 Nov",
        "phase-4 · progressing at 5 %",
        "Cora in #deployments: /rollout advance next phase-4",
        "@Cora advanced phase-4 5 % → 10 %",
        "Daily rollout summary · Wed 04 Nov",
        "phase-4 · progressing at 10 %",
        "Cora in #deployments: /rollout advance next phase-4",
        "@Cora advanced phase-4 10 % → 25 %",
        "rollout-bot rolled back phase-4 25 % → 0 % automatically",
        "Gate error_rate: measured",
        "above the threshold 0.01, for the whole window of 5m",
        "DM @Forge: 🚨 You are on call for incident #1",
        "(Forge is away from the keyboard",
        "DM @Hudson: 🚨 You are on call for incident #1",
        "Hudson pressed [Acknowledge]",
        "Acknowledged by @Hudson",
        "End state: phase-4 rolled back at 0 %",
    )
    assert "checkpoint · phase-4 · progressing at 5 %" in transcript
    assert "DM @Cora: 🚨" not in transcript  # the escalation stopped at Hudson
    assert_stamps_never_go_backwards(transcript)


def test_interactive_mode_answers_slash_commands_typed_as_the_chosen_user(
    breach_run: tuple[str, float],
) -> None:
    output, _ = breach_run
    after = output.split("Type /rollout commands as Hudson", 1)[1]
    assert_in_order(
        after,
        "Hudson in #deployments: /rollout status",
        "#deployments (only Hudson sees)",
        "phase-4",
        "rolled back to 0 %",
        "Hudson in #deployments: /rollout start phase-4",
        "(only Hudson sees)",
    )


def test_without_a_fault_the_rollout_completes_at_100_percent() -> None:
    transcript, _ = run_demo("--no-breach")
    assert "no fault (--no-breach)" in transcript
    assert "slow motion" not in transcript
    assert_in_order(
        transcript,
        "@Cora started phase-4 0 % → 5 %",
        "@Cora advanced phase-4 5 % → 10 %",
        "@Cora advanced phase-4 10 % → 25 %",
        "@Cora advanced phase-4 25 % → 50 %",
        "@Cora advanced phase-4 50 % → 75 %",
        "@Cora advanced phase-4 75 % → 100 %",
        "rollout-bot completed phase-4 at 100 %",
        "End state: phase-4 completed at 100 %",
    )
    assert "rolled back" not in transcript
    assert "You are on call" not in transcript
    assert_stamps_never_go_backwards(transcript)
