"""How long ago something happened, as the messages say it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.domain.durations import format_duration, format_elapsed, parse_duration
from bot.render.summaries import CheckpointView, checkpoint_message
from tests.unit.test_checkpoint_blocks import AT_10, GREEN, NOW, SPEC


@pytest.mark.parametrize(
    ("elapsed", "said"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=30), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(seconds=60), "1m"),
        (timedelta(minutes=15, seconds=40), "15m"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=4, minutes=30, seconds=12), "4h30m"),
        (timedelta(hours=23, minutes=59, seconds=59), "23h59m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=1, minutes=2), "1d"),
        (timedelta(days=1, hours=3, minutes=40), "1d3h"),
        (timedelta(days=9, hours=5), "9d5h"),
        (timedelta(seconds=-5), "just now"),  # a clock a little behind is not the future
    ],
)
def test_elapsed_time_is_rounded_down_to_what_people_say(elapsed: timedelta, said: str) -> None:
    assert format_elapsed(elapsed) == said


def test_whole_hours_and_minutes_read_as_config_durations() -> None:
    for text in ("15m", "1h", "4h30m", "1d", "2d3h"):
        assert format_elapsed(parse_duration(text)) == text == format_duration(parse_duration(text))


def in_stage_line(since_change: timedelta) -> str:
    status = replace(AT_10, stage_started_at=NOW - since_change)
    message = checkpoint_message(CheckpointView(SPEC, status, NOW, GREEN))
    return str(message["blocks"][0]["text"]["text"]).splitlines()[1]


def test_a_checkpoint_half_a_minute_after_a_change_says_just_now() -> None:
    line = in_stage_line(timedelta(seconds=30))
    assert line.endswith("· entered this stage just now"), line
    assert "0s" not in json.dumps(checkpoint_message(
        CheckpointView(SPEC, replace(AT_10, stage_started_at=NOW - timedelta(seconds=30)), NOW)
    ))


def test_a_checkpoint_later_says_how_long_in_stage() -> None:
    assert in_stage_line(timedelta(minutes=15, seconds=30)).endswith("· 15m in stage")
    assert in_stage_line(timedelta(hours=20, minutes=8, seconds=5)).endswith("· 20h8m in stage")
    assert in_stage_line(timedelta(days=1, minutes=2)).endswith("· 1d in stage")
