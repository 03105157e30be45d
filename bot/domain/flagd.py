"""The flags document as a flagd flag-definition file, for services that evaluate flags
through OpenFeature with the flagd provider (in-process or file mode).

Pure: the document `bot.domain.exposure.flags_document` builds goes in, flagd's JSON comes
out. Every flag is boolean (variants `on: true`, `off: false`). A flag between 0 and 100 %
gives its percentage to `on` with flagd's `fractional` operation:

    {"fractional": [{"cat": [PARENT, {"var": "targetingKey"}]}, ["on", P], ["off", 100 - P]]}

Why this form: flagd hashes the bucketing value (murmur3, 32 bits) into a bucket that
depends only on the value and on the sum of the weights, then walks the variants in order.
With `on` first and the weights always summing to 100, `on` holds the buckets [0, P), so a
key that is on at 10 % is still on at 25 %. The bucketing value is given explicitly rather
than left to flagd's shorthand (flag key + targeting key) so that a stage flag, hashed with
its rollout's flag (PARENT), is on for exactly the keys its rollout's flag is on for, as at
`GET /flags`. At 0 % and 100 % there is no targeting: the default variant is `off` or `on`.
Each flag's metadata names its rollout and percentage (and the rollout's state), which an
OpenFeature client reads back in `flag_metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
ON, OFF = "on", "off"


def flagd_flag(bucket_with: str, percent: int) -> dict[str, Any]:
    """One boolean flag on for `percent` % of targeting keys, bucketed with `bucket_with`."""
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {ON: True, OFF: False},
        "defaultVariant": ON if percent >= 100 else OFF,
    }
    if 0 < percent < 100:
        bucket_by = {"cat": [bucket_with, {"var": "targetingKey"}]}
        flag["targeting"] = {"fractional": [bucket_by, [ON, percent], [OFF, 100 - percent]]}
    return flag


def flagd_document(flags: Mapping[str, Any]) -> dict[str, Any]:
    """flagd's flag definitions for every flag of a flags document (`GET /flags`)."""
    definitions: dict[str, Any] = {}
    for name, entry in flags["flags"].items():
        percent = int(entry["rollout_percentage"]) if entry["enabled"] else 0
        definitions[name] = flagd_flag(entry.get("parent", name), percent)
        metadata: dict[str, str | int] = {
            "rollout": entry["rollout"],
            "rollout_percentage": percent,
        }
        if "state" in entry:
            metadata["state"] = entry["state"]
        definitions[name]["metadata"] = metadata
    # `version` grows with every change, as in the flags document.
    return {"$schema": SCHEMA, "flags": definitions, "metadata": {"version": flags["version"]}}
