"""How background loops wait: until the next due time, a kick, or a real-time poll."""

from __future__ import annotations

import asyncio
from datetime import datetime

from bot.clock import Clock


async def wait_until_due(
    clock: Clock, next_due: datetime | None, kick: asyncio.Event, poll_seconds: float
) -> None:
    """Return when `next_due` arrives on `clock`, when `kick` is set, or after `poll_seconds`
    of real time (other replicas may have added work), whichever is first."""
    delay = poll_seconds
    if next_due is not None:
        delay = max(0.0, (next_due - clock.now()).total_seconds())
    sleeper = asyncio.ensure_future(clock.sleep(delay))
    kicked = asyncio.ensure_future(kick.wait())
    try:
        await asyncio.wait(
            {sleeper, kicked}, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        sleeper.cancel()
        kicked.cancel()
        kick.clear()
