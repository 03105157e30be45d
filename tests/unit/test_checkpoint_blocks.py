"""Checkpoint messages as data: one snapshot per situation, within Slack's limits.

Set UPDATE_SNAPSHOTS=1 to rewrite the snapshots after a deliberate change, then read the
diff before committing it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.gates import Outcome
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import AdvanceMode, RolloutSpec, RolloutStatus, State
from bot.render.summaries import (
    ChangeLine,
    CheckpointView,
    GateLine,
    IncidentLine,
    checkpoint_message,
    daily_summary_message,
)

SNAPSHOTS = Path(__file__).parents[1] / "snapshots"
NOW = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)
STARTED = NOW - timedelta(hours=4, minutes=30)
SPEC = RolloutSpec(
    "phase-4",
    "phase_4_deployment",
    BUILTIN_PLANS["safe"],
    ("error_rate", "p95_latency", "test_pass_rate"),
    AdvanceMode.MANUAL,
)
AT_10 = RolloutStatus(State.PROGRESSING, 10, 1, STARTED, "", 4)
GREEN = (
    GateLine("error_rate", Outcome.PASS, 0.0012, 0.005, worst=0.0031),
    GateLine("p95_latency", Outcome.PASS, 0.182, 0.25, worst=0.201),
    GateLine("test_pass_rate", Outcome.PASS, 0.993, 0.98, worst=0.987, fail_above=False),
)
ADVANCED = (ChangeLine(STARTED, "U0CORA", "advance", 5, 10),)


def replace_gate(name: str, gate: GateLine) -> tuple[GateLine, ...]:
    return tuple(gate if g.name == name else g for g in GREEN)


SITUATIONS = {
    "all_green": CheckpointView(
        SPEC, AT_10, NOW, GREEN, changes=ADVANCED, soak_ends=STARTED + timedelta(days=1)
    ),
    "gate_failing": CheckpointView(
        SPEC,
        AT_10,
        NOW,
        replace_gate("error_rate", GateLine("error_rate", Outcome.FAIL, 0.021, 0.005, 0.034)),
    ),
    "no_data": CheckpointView(
        SPEC,
        AT_10,
        NOW,
        replace_gate(
            "p95_latency",
            GateLine(
                "p95_latency", Outcome.NO_DATA, None, 0.25, detail="the query returned no series"
            ),
        ),
    ),
    "source_down": CheckpointView(
        SPEC,
        AT_10,
        NOW,
        tuple(
            GateLine(
                g.name,
                Outcome.SOURCE_DOWN,
                None,
                g.threshold,
                fail_above=g.fail_above,
                detail="Prometheus unreachable: connection refused",
            )
            for g in GREEN
        ),
        incidents=(IncidentLine("INC-7", "Prometheus unreachable for 10m"),),
        missing=("gate history: Prometheus unreachable (connection refused)",),
    ),
    "paused": CheckpointView(
        SPEC,
        RolloutStatus(State.PAUSED, 10, 1, STARTED, "waiting for the on-call to come back", 5),
        NOW,
        GREEN,
        changes=(
            ChangeLine(
                NOW - timedelta(minutes=10),
                "U0FORGE",
                "pause",
                10,
                10,
                "waiting for the on-call to come back",
            ),
        ),
    ),
    "rolled_back": CheckpointView(
        SPEC,
        RolloutStatus(State.ROLLED_BACK, 0, None, None, "error_rate failing", 6),
        NOW,
        replace_gate("error_rate", GateLine("error_rate", Outcome.FAIL, 0.021, 0.005, 0.034)),
        incidents=(IncidentLine("INC-8", "Automatic rollback of phase-4", "U0FORGE"),),
        changes=(
            ChangeLine(
                NOW - timedelta(minutes=3),
                "rollout-bot",
                "rollback",
                10,
                0,
                "error_rate 0.021 above 0.005 for 5m",
            ),
        ),
    ),
}


def check_limits(message: dict[str, object]) -> None:
    blocks = message["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for block in blocks:
        texts = [block.get("text"), *block.get("elements", [])]
        for text in texts:
            if isinstance(text, dict) and "text" in text:
                assert len(text["text"]) <= 3000


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_checkpoint_snapshot(situation: str) -> None:
    message = checkpoint_message(SITUATIONS[situation])
    check_limits(message)
    path = SNAPSHOTS / f"checkpoint_{situation}.json"
    rendered = json.dumps(message, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(rendered)
    assert path.exists(), f"no snapshot {path.name}; run with UPDATE_SNAPSHOTS=1 and review it"
    assert rendered == path.read_text()


def test_what_each_situation_says() -> None:
    said = {
        name: json.dumps(checkpoint_message(v), ensure_ascii=False)
        for name, v in SITUATIONS.items()
    }
    assert "✅ pass *error_rate* 0.0012 (fails > 0.005) · worst 0.0031" in said["all_green"]
    assert "4h30m in stage" in said["all_green"]
    assert "then waits for a manual `/rollout advance next`" in said["all_green"]
    assert "🔴 FAIL *error_rate* 0.021 (fails > 0.005) · worst 0.034" in said["gate_failing"]
    assert "Waits for green gates (error_rate)" in said["gate_failing"]
    assert (
        "⚪ no data *p95_latency* n/a (fails > 0.25) — the query returned no series"
        in (said["no_data"])
    )
    assert "⚠️ Missing: gate history: Prometheus unreachable" in said["source_down"]
    assert (
        "`INC-7` Prometheus unreachable for 10m — paging, not acknowledged" in (said["source_down"])
    )
    assert "waits for `/rollout resume phase-4`" in said["paused"]
    assert "<@U0FORGE> pause 10 % → 10 % — waiting for the on-call" in said["paused"]
    assert "Held at 0 %: waits for `/rollout start phase-4`" in said["rolled_back"]
    assert "held by <@U0FORGE>" in said["rolled_back"]


def test_many_gates_fold_into_and_n_more() -> None:
    gates = tuple(GateLine(f"gate_{i}", Outcome.PASS, 0.1, 1.0) for i in range(30))
    view = CheckpointView(SPEC, AT_10, NOW, gates)
    text = json.dumps(checkpoint_message(view), ensure_ascii=False)
    assert "…and 22 more" in text
    assert "gate_29" not in text


def test_many_missing_parts_fold_within_50_blocks() -> None:
    gates = tuple(GateLine(f"gate_{i}", Outcome.SOURCE_DOWN, None, 1.0) for i in range(60))
    missing = tuple(f"worst gate_{i} since the last checkpoint: timeout" for i in range(60))
    message = checkpoint_message(CheckpointView(SPEC, AT_10, NOW, gates, missing=missing))
    check_limits(message)
    assert len(message["blocks"]) == 50
    last = message["blocks"][-1]["elements"][0]["text"]
    assert last == "⚠️ …and 14 more parts missing"  # 3 blocks above, 46 shown, 14 folded


def test_a_daily_summary_of_many_rollouts_stays_within_50_blocks() -> None:
    views = [
        CheckpointView(
            RolloutSpec(f"r-{i}", f"f{i}", BUILTIN_PLANS["safe"], ("error_rate",)),
            AT_10,
            NOW,
            GREEN[:1],
            missing=("gate history: timeout", "incidents: timeout"),
        )
        for i in range(60)
    ]
    message = daily_summary_message(views, NOW, charted=10)
    check_limits(message)
    assert message["text"] == "Daily rollout summary: 60 active"
    tail = [b["elements"][0]["text"] for b in message["blocks"][-3:]]
    assert tail == [
        "…more in `/rollout status`",
        "…and 40 more rollouts",
        "Charts in the thread for the first 10 of 60 rollouts.",
    ]
