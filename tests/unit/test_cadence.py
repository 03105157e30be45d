"""Checkpoint cadence after a change of percentage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.cadence import Rule, checkpoints_between, next_checkpoint

CHANGE = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def h(hours: float) -> datetime:
    return CHANGE + timedelta(hours=hours)


def test_the_default_cadence_over_48_hours() -> None:
    moments = checkpoints_between(CHANGE, CHANGE, h(48))
    # 15 min for 6 h: 24; hourly from 7 h to 24 h: 18; every 3 h from 27 h to 48 h: 8.
    assert len(moments) == 24 + 18 + 8
    assert moments[:3] == [h(0.25), h(0.5), h(0.75)]
    assert moments[23:26] == [h(6), h(7), h(8)]
    assert moments[41:44] == [h(24), h(27), h(30)]
    assert moments[-1] == h(48)


def test_next_is_strictly_after_and_aligned_to_its_segment() -> None:
    assert next_checkpoint(CHANGE, h(0.25)) == h(0.5)
    assert next_checkpoint(CHANGE, h(0.3)) == h(0.5)
    assert next_checkpoint(CHANGE, h(6)) == h(7)
    assert next_checkpoint(CHANGE, h(6.5)) == h(7)
    assert next_checkpoint(CHANGE, h(24)) == h(27)
    assert next_checkpoint(CHANGE, h(100)) == h(102)


def test_a_late_bot_gets_the_next_one_after_now_not_the_missed_ones() -> None:
    assert next_checkpoint(CHANGE, h(3.9)) == h(4)


def test_a_cadence_that_ends() -> None:
    rules = (Rule(timedelta(hours=1), timedelta(hours=2)),)
    assert checkpoints_between(CHANGE, CHANGE, h(10), rules) == [h(1), h(2)]
    assert next_checkpoint(CHANGE, h(2), rules) is None
