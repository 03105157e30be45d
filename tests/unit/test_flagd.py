"""The flagd flag definitions the bot writes: boolean flags, `on` first in `fractional` with
weights summing to 100 (so a key's bucket never moves), no targeting at 0 and 100 %."""

from __future__ import annotations

from bot.domain.flagd import flagd_document, flagd_flag


def test_a_flag_between_0_and_100_gives_its_percentage_to_on_first() -> None:
    flag = flagd_flag("new_checkout", 25)
    assert flag["variants"] == {"on": True, "off": False}
    assert flag["defaultVariant"] == "off"
    bucket_by, on, off = flag["targeting"]["fractional"]
    assert bucket_by == {"cat": ["new_checkout", {"var": "targetingKey"}]}
    assert (on, off) == (["on", 25], ["off", 75])


def test_no_targeting_at_0_and_100_percent() -> None:
    assert flagd_flag("f", 0)["defaultVariant"] == "off"
    assert "targeting" not in flagd_flag("f", 0)
    assert flagd_flag("f", 100)["defaultVariant"] == "on"
    assert "targeting" not in flagd_flag("f", 100)


def test_a_stage_flag_buckets_with_its_rollouts_flag_and_a_disabled_flag_is_off() -> None:
    document = {
        "flags": {
            "new_checkout": {
                "enabled": True,
                "rollout_percentage": 10,
                "rollout": "checkout",
                "state": "progressing",
            },
            "otel_enabled": {
                "enabled": True,
                "rollout_percentage": 10,
                "rollout": "checkout",
                "parent": "new_checkout",
            },
            "search_v2": {"enabled": False, "rollout_percentage": 30, "rollout": "search"},
        },
        "version": 4,
    }
    flags = flagd_document(document)["flags"]
    assert flags["otel_enabled"]["targeting"] == flags["new_checkout"]["targeting"]
    assert flags["new_checkout"]["metadata"] == {
        "rollout": "checkout",
        "rollout_percentage": 10,
        "state": "progressing",
    }
    assert flags["search_v2"]["defaultVariant"] == "off"
    assert "targeting" not in flags["search_v2"]
    assert flagd_document(document)["metadata"] == {"version": 4}
