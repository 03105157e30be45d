"""The flags document and the stable bucketing that `GET /flags/{flag}/evaluate` answers by."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from bot.domain.exposure import bucket, evaluate, flags_document, is_on
from bot.domain.plans import Plan, Stage
from bot.domain.rollout import RolloutSpec, RolloutStatus, State

PLAN = Plan("p", (Stage(5, timedelta(1), ("otel_enabled",)), Stage(25, timedelta(1), ("orch",))))
SPEC = RolloutSpec("phase-4", "phase_4_deployment", PLAN)


def test_the_bucket_is_the_documented_formula() -> None:
    expected = int(hashlib.sha256(b"phase_4_deployment:user-42").hexdigest()[:8], 16) % 10000
    assert bucket("phase_4_deployment", "user-42") == expected


def test_a_key_in_at_a_percentage_stays_in_as_it_grows() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    previous: set[str] = set()
    for percent in (0, 5, 10, 25, 50, 75, 100):
        now_in = {k for k in keys if is_on("phase_4_deployment", k, percent)}
        assert previous <= now_in
        assert abs(len(now_in) / len(keys) - percent / 100) < 0.03
        previous = now_in


def test_the_document_lists_the_flag_and_its_stage_flags() -> None:
    status = RolloutStatus(State.PROGRESSING, 25, 1, datetime(2026, 1, 1, tzinfo=UTC), version=3)
    doc = flags_document({"phase-4": SPEC}, {"phase-4": status}, None)
    entry = doc["flags"]["phase_4_deployment"]
    assert entry == {
        "enabled": True, "rollout_percentage": 25, "rollout": "phase-4",
        "state": "progressing", "stage_flags": ["otel_enabled", "orch"], "version": 3,
    }  # fmt: skip
    assert doc["flags"]["otel_enabled"]["parent"] == "phase_4_deployment"
    # A stage flag is on for exactly the keys its rollout's flag is on for.
    for key in ("a", "b", "user-42", "user-7"):
        parent = evaluate(doc, "phase_4_deployment", key)
        child = evaluate(doc, "otel_enabled", key)
        assert parent is not None and child is not None and parent["on"] == child["on"]
    assert evaluate(doc, "nope", "a") is None
