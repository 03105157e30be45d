"""`POST /alertmanager`: Alertmanager's webhook (payload version 4) over HTTP, handed to
`bot.services.alerts.AlertIntake`.

Answers: 2xx taken (or already taken); 400 malformed, with the reason; 401 bad
credentials; 413 too big; 503 when the bot cannot take it now, since Alertmanager
retries 5xx only (never 429). A body that can never be taken (deep nesting, numbers out
of range, not UTF-8: `bot.inbound.json_body`) is a 400, so it is not retried for ever;
5xx is kept for our own passing trouble, such as a busy database.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.config import AlertmanagerConfig
from bot.inbound.json_body import NotJson, decode
from bot.services.alerts import AlertIntake, WebhookPayload

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
MAX_IN_FLIGHT = 64  # notifications being taken at once; more get 503 and a retry
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



@dataclass(frozen=True)
class EndpointAuth:
    """Optional credentials on the endpoint: a bearer token, HTTP basic auth, or none."""

    bearer_token: str | None = None
    basic: tuple[str, str] | None = None

    @classmethod
    def from_config(cls, config: AlertmanagerConfig, token_override: str = "") -> EndpointAuth:
        basic = None
        if config.basic_auth is not None:
            basic = (config.basic_auth.username, config.basic_auth.password)
        return cls(token_override or config.bearer_token, basic)

    def allows(self, header: str) -> bool:
        if self.bearer_token is None and self.basic is None:
            return True
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if self.bearer_token is not None and scheme == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.bearer_token.encode())
        if self.basic is not None and scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            expected = f"{self.basic[0]}:{self.basic[1]}"
            return hmac.compare_digest(decoded.encode(), expected.encode())
        return False


def alertmanager_handler(intake: AlertIntake, auth: EndpointAuth) -> Handler:
    async def receive(request: web.Request) -> web.Response:
        if not auth.allows(request.headers.get("Authorization", "")):
            log.warning("refusing an Alertmanager notification: bad or missing credentials")
            return _answer(401, "bad or missing credentials", {"WWW-Authenticate": "Bearer"})
        if intake.in_flight >= MAX_IN_FLIGHT:  # before reading: a busy bot reads nothing
            return _answer(503, "busy: try again", {"Retry-After": "1"})
        intake.in_flight += 1  # counted from here: bodies being read are work in flight too
        try:
            body, problem = await _read_body(request)
            if problem is not None:
                log.warning("refusing an Alertmanager notification: %s", problem)
                return _answer(413, problem)
            payload, problem = parse_payload(body)
            if payload is None:
                log.warning("refusing an Alertmanager notification: %s", problem)
                return _answer(400, problem or "malformed")
            taken = await intake.take(payload)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("cannot take an Alertmanager notification now: %s", exc)
            return _answer(503, "the database is busy: try again", {"Retry-After": "1"})
        except Exception:
            log.exception("failed to take an Alertmanager notification")
            return _answer(503, "could not take it now: try again", {"Retry-After": "1"})
        finally:
            intake.in_flight -= 1
        return web.json_response(
            {"status": taken.outcome, "incident": taken.incident, "held": taken.held}
        )

    return receive


def parse_payload(body: bytes) -> tuple[WebhookPayload | None, str | None]:
    """The validated payload, or None and why not (in words for the log and the reply)."""
    if not body:
        return None, "empty body"
    try:
        data = decode(body)
    except NotJson as exc:  # never retried: the same body would fail the same way
        return None, str(exc)
    if not isinstance(data, dict):
        return None, f"the payload must be a JSON object, not {type(data).__name__}"
    if data.get("version") != "4":
        return None, f'unsupported payload version {data.get("version")!r}; expected "4"'
    try:
        return WebhookPayload.model_validate(data), None
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()[:5]
        ]
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        return None, "invalid payload: " + "; ".join(reasons) + more


async def _read_body(request: web.Request) -> tuple[bytes, str | None]:
    too_big = f"body larger than {MAX_BODY} bytes"
    if request.content_length is not None and request.content_length > MAX_BODY:
        return b"", too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return b"", too_big
        chunks.append(chunk)
    return b"".join(chunks), None


def _answer(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
