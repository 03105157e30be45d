"""What the service being rolled out reads: every flag, its percentage, and who is in.

Pure. The same document is served at `GET /flags`, written to the flags file, and (one
rollout's part of it) POSTed to a rollout's webhook. `docs/flags.md` describes it.

Who is in: `bucket(flag, key) = int(sha256(f"{flag}:{key}").hexdigest()[:8], 16) % 10000`,
and a key is in when `bucket < percent * 100`. A key's bucket never changes, so a key in at
10 % stays in at 25 %. A stage flag (switched on by a stage, e.g. `otel_enabled`) is on for
exactly the keys its rollout's flag is on for: it hashes with the rollout's flag.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.domain.rollout import RolloutSpec, RolloutStatus

BUCKETS = 10_000


def bucket(flag: str, key: str) -> int:
    digest = hashlib.sha256(f"{flag}:{key}".encode()).hexdigest()
    return int(digest[:8], 16) % BUCKETS


def is_on(flag: str, key: str, percent: int) -> bool:
    return bucket(flag, key) < percent * (BUCKETS // 100)


def rollout_entry(spec: RolloutSpec, status: RolloutStatus) -> dict[str, Any]:
    """The rollout's own flag: its percentage and the stage flags on at it. A shadow run
    delivers what was delivered before it started, whatever it decides."""
    percent = status.delivered
    entry: dict[str, Any] = {
        "enabled": percent > 0,
        "rollout_percentage": percent,
        "rollout": spec.name,
        "state": status.state.value,
        "stage_flags": list(spec.plan.flags_on_at(percent)),
        "version": status.version,
    }
    if status.shadow is not None:  # a shadow run decides; this percentage is what holds
        entry["shadow"] = True
    return entry


def flags_document(
    specs: Mapping[str, RolloutSpec],
    statuses: Mapping[str, RolloutStatus],
    updated_at: datetime | None,
) -> dict[str, Any]:
    """Every flag: each rollout's flag, and each stage flag it switches on.

    `version` grows with every change of any rollout (the sum of their versions), so a
    reader can ignore a document older than one it has seen.
    """
    flags: dict[str, Any] = {}
    stage_flags: dict[str, Any] = {}
    for name, spec in specs.items():
        status = statuses.get(name, RolloutStatus())
        flags[spec.flag] = rollout_entry(spec, status)
        percent = status.delivered
        for stage_flag in spec.plan.flags_on_at(percent):
            if percent == 0:
                continue
            known = stage_flags.get(stage_flag)
            if known is None or known["rollout_percentage"] < percent:
                stage_flags[stage_flag] = {
                    "enabled": True,
                    "rollout_percentage": percent,
                    "rollout": name,
                    "parent": spec.flag,
                }
    for stage_flag, entry in stage_flags.items():
        flags.setdefault(stage_flag, entry)
    return {
        "flags": flags,
        "version": sum(s.version for s in statuses.values()),
        "updated_at": updated_at.isoformat() if updated_at else None,
    }


def evaluate(document: Mapping[str, Any], flag: str, key: str) -> dict[str, Any] | None:
    """Whether `key` is in for `flag` under `document`; None for an unknown flag."""
    entry = document["flags"].get(flag)
    if entry is None:
        return None
    hashed = entry.get("parent", flag)
    percent = int(entry["rollout_percentage"]) if entry["enabled"] else 0
    return {
        "flag": flag,
        "key": key,
        "on": is_on(hashed, key, percent),
        "bucket": bucket(hashed, key),
        "rollout_percentage": percent,
        "hashed_with": hashed,
    }
