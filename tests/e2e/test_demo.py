"""`rollout-bot demo` as a newcomer runs it: a subprocess, its transcript, in order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str, stdin: str | None = None, timeout: float = 90) -> tuple[str, float]:
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", *args],
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


def test_the_demo_runs_the_genesis_rollout_to_a_rollback_and_an_acknowledged_page() -> None:
    transcript, elapsed = run_demo("--speed", "10080")
    assert elapsed < 90
    assert "dashboard http://127.0.0.1:" in transcript
    assert_in_order(
        transcript,
        "Cora in #deployments: /rollout start phase-4",
        "@Cora started phase-4 0 % → 5 %",
        "Cora in #deployments: /rollout advance next phase-4",
        "@Cora advanced phase-4 5 % → 10 %",
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


def test_interactive_mode_answers_slash_commands_typed_as_the_chosen_user() -> None:
    transcript, _ = run_demo(
        "--speed", "10080", "--interactive", "--user", "U0HUDSON",
        stdin="/rollout status\n/rollout start phase-4\nexit\n",
    )
    after = transcript.split("Type /rollout commands as Hudson", 1)[1]
    assert_in_order(
        after,
        "Hudson in #deployments: /rollout status",
        "#deployments (only Hudson sees)",
        "phase-4",
        "rolled back to 0 %",
        "Hudson in #deployments: /rollout start phase-4",
        "(only Hudson sees)",
    )
