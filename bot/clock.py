"""Time, injected. Nothing else in the bot reads the wall clock.

`SystemClock` is real time; `ManualClock` moves only when a test advances it;
`ScaledClock` runs faster than real time, for the demo; `FileClock` reads the time from a
file that a driver writes, so that several processes, or one killed and restarted many
times, share one stepped clock (fault tests and replica tests).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time (returns early on nothing)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock for tests: time stands still until `advance` moves it; sleepers then wake."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + timedelta(seconds=max(0.0, seconds))
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= deadline)

    async def advance(self, delta: timedelta | float) -> None:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self._now += delta
        async with self._moved:
            self._moved.notify_all()
        await asyncio.sleep(0)

    async def set(self, moment: datetime) -> None:
        await self.advance(moment - self._now)


class ScaledClock:
    """Time that passes `speed` times faster than real time, from `start`."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        self.speed = speed
        self._start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def set_speed(self, speed: float) -> None:
        """Run at `speed` from now on; time stays continuous. Sleepers started before the
        change wake on the old speed (loops that poll re-check on waking)."""
        now = self.now()
        self._start, self._t0, self.speed = now, time.monotonic(), speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class FileClock:
    """The instant written in a file (ISO 8601, with its offset), as the driver last wrote it.

    The driver replaces the file atomically (write beside it, then rename). Time never runs
    back: an unreadable or older instant leaves the clock where it was. `sleep` looks at the
    file every `poll` real seconds until its deadline has passed.
    """

    def __init__(self, path: str | Path, poll: float = 0.02) -> None:
        self.path = Path(path)
        self.poll = poll
        self._last: datetime | None = None
        if self._read() is None:
            raise ValueError(f"{self.path}: no ISO 8601 instant with an offset to read")

    def _read(self) -> datetime | None:
        try:
            moment = datetime.fromisoformat(self.path.read_text().strip())
        except (OSError, ValueError):
            return self._last
        if moment.tzinfo is None:
            return self._last
        if self._last is None or moment > self._last:
            self._last = moment
        return self._last

    def now(self) -> datetime:
        moment = self._read()
        assert moment is not None  # the constructor read one
        return moment

    async def sleep(self, seconds: float) -> None:
        deadline = self.now() + timedelta(seconds=max(0.0, seconds))
        while self.now() < deadline:  # noqa: ASYNC110 - another process moves the file
            await asyncio.sleep(self.poll)


def write_clock_file(path: str | Path, moment: datetime) -> None:
    """Set a `FileClock`'s time: written beside the file, then renamed over it."""
    target = Path(path)
    spare = target.with_name(target.name + ".next")
    spare.write_text(moment.isoformat())
    spare.replace(target)
