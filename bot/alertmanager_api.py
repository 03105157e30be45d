"""Alertmanager's API v2, the two calls a silence needs: `POST /api/v2/silences` creates one,
`DELETE /api/v2/silence/{id}` expires it.

Every failure (unreachable, a timeout, an HTTP error, an answer without a silence id) raises
`AlertmanagerFailed` with a sentence for the person who asked; nothing else escapes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.errors import AlertmanagerFailed

log = logging.getLogger(__name__)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def silence_body(
    labels: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
) -> dict[str, Any]:
    """A silence matching exactly these label values (equality matchers, sorted)."""
    return {
        "matchers": [
            {"name": name, "value": value, "isRegex": False, "isEqual": True}
            for name, value in sorted(labels.items())
        ],
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at),
        "createdBy": created_by,
        "comment": comment,
    }


class AlertmanagerApi:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def create_silence(self, body: Mapping[str, Any]) -> str:
        """The new silence's id."""
        answer = await self._call("POST", "/api/v2/silences", body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerFailed(f"Alertmanager at {self.url} answered without a silence id")
        return silence_id

    async def expire_silence(self, silence_id: str) -> None:
        await self._call("DELETE", f"/api/v2/silence/{silence_id}")

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.request(method, self.url + path, json=body) as response,
            ):
                text = await response.text()
                if response.status >= 300:
                    detail = " ".join(text.split())[:200] or response.reason
                    raise AlertmanagerFailed(
                        f"Alertmanager at {self.url} refused {method} {path}: "
                        f"HTTP {response.status} {detail}"
                    )
                if not text.strip():
                    return None
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise AlertmanagerFailed(
                        f"Alertmanager at {self.url} answered {method} {path} with no JSON"
                    ) from exc
        except AlertmanagerFailed:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("Alertmanager %s %s failed: %r", method, path, exc)
            reason = str(exc) or type(exc).__name__
            raise AlertmanagerFailed(
                f"Alertmanager at {self.url} could not be reached ({reason})"
            ) from exc
