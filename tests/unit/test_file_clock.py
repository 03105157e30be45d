"""A clock read from a file: processes that share the file share the time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FileClock, write_clock_file

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_two_clocks_on_one_file_read_the_same_instant(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, T0)
    first, second = FileClock(path), FileClock(path)
    write_clock_file(path, T0 + timedelta(hours=3))
    assert first.now() == second.now() == T0 + timedelta(hours=3)


def test_time_never_runs_back_and_garbage_leaves_it_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, T0 + timedelta(minutes=5))
    clock = FileClock(path)
    write_clock_file(path, T0)
    assert clock.now() == T0 + timedelta(minutes=5)
    path.write_text("not a time")
    assert clock.now() == T0 + timedelta(minutes=5)
    path.write_text("2026-11-02T10:00:00")  # no offset: not taken
    assert clock.now() == T0 + timedelta(minutes=5)


def test_a_file_without_an_instant_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("")
    with pytest.raises(ValueError, match="ISO 8601"):
        FileClock(path)


async def test_sleep_wakes_when_the_driver_passes_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, T0)
    clock = FileClock(path, poll=0.005)
    sleeper = asyncio.create_task(clock.sleep(60))
    await asyncio.sleep(0)  # the sleeper reads its deadline: T0 + 60 s
    write_clock_file(path, T0 + timedelta(seconds=59))
    await asyncio.sleep(0.05)
    assert not sleeper.done()
    write_clock_file(path, T0 + timedelta(seconds=60))
    await asyncio.wait_for(sleeper, 60)
