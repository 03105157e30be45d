"""Refused requests in the log: one WARNING line each, at most one line per interval.

Anyone who can reach the port can send requests the bot refuses (an oversized header, 2,000
headers, a 100,000-character path, a malformed payload). Each is answered with a 4xx and
logged on one line, without a traceback; past one line per `every` seconds the rest are
counted and the next line says how many were left out, so a flood of them cannot fill the
log. Errors of the bot's own (a 5xx) are logged as before, with their traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("bot.inbound.refused")

EVERY_SECONDS = 10.0
DETAIL_LIMIT = 200


class RefusalLog:
    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        every: float = EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.monotonic = monotonic
        self.suppressed = 0
        self._last: float | None = None

    def refused(self, what: str, remote: str | None = None) -> bool:
        """Note a refused request; True when it was written (not left out)."""
        now = self.monotonic()
        if self._last is not None and now - self._last < self.every:
            self.suppressed += 1
            return False
        self._last = now
        left_out = self.suppressed
        self.suppressed = 0
        more = f" ({left_out} more refused since the last such line)" if left_out else ""
        text = " ".join(what.split())[:DETAIL_LIMIT]  # one line, whatever was sent
        self.logger.warning("refused a request from %s: %s%s", remote or "?", text, more)
        return True


class ServerLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with requests it refuses as malformed HTTP (a 4xx) written
    to a `RefusalLog` instead of as an ERROR with a traceback."""

    def __init__(self, logger: logging.Logger, refusals: RefusalLog) -> None:
        super().__init__(logger, {})
        self.refusals = refusals

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            remote = str(args[0]) if args else None
            self.refusals.refused(f"{type(exc).__name__}: {exc.message}", remote)
            return
        super().exception(msg, *args, exc_info=exc_info, **kw)
