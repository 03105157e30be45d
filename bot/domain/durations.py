"""Durations as people write them in config and commands: 30s, 5m, 12h, 2d, 1h30m."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse `30s`, `5m`, `12h`, `2d`, `1w` or combinations such as `1h30m`.

    Raises ValueError with a sentence a person can act on.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned):
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit, e.g. 30s, 5m, 12h, 2d"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, shortest form first: 90m -> 1h30m."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def format_elapsed(delta: timedelta) -> str:
    """How long ago, as people say it: `just now` under a minute, then whole minutes under
    an hour (`15m`), hours and minutes under a day (`4h30m`), days and hours beyond (`1d2h`).
    Truncated, never rounded up: 59m59s is `59m`, so a stage is never older than it says."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"
