"""The dashboard's HTTP side: `GET /` (the page), `GET /events` (server-sent events).

Every change the rollout service commits wakes each open event stream; the overview is
read and rendered once per change, and each stream pushes the fragment when it differs from
what it last sent. Idle streams re-check every KEEPALIVE_SECONDS and send a keepalive.

Access: with `dashboard.token` set in the config, the dashboard always needs it, on loopback
too (a reverse proxy on the same host reaches the bot from 127.0.0.1). With no token, it is
open while the bot listens on loopback only. The token is given once as `?token=` (it
becomes a cookie and the address loses it) or on every request as `Authorization: Bearer`.
Bound beyond loopback with no token configured, the dashboard refuses with 403 and says how
to set one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from aiohttp import web

from bot.render import dashboard_page as dashboard
from bot.render.overview_model import Overview
from bot.services.overview_reader import OverviewSource

NameSource = Callable[[Iterable[str]], Awaitable[Mapping[str, str]]]

log = logging.getLogger(__name__)

COOKIE = "rollout_dashboard"
COOKIE_MAX_AGE = 30 * 24 * 3600
KEEPALIVE_SECONDS = 15.0
MAX_STREAMS = 200
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the port on this machine."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Access(Enum):
    OPEN = "open"  # let in
    GRANT = "grant"  # a correct ?token=: set the cookie, drop the token from the address
    NO_TOKEN_CONFIGURED = "no_token_configured"
    NEEDS_TOKEN = "needs_token"
    WRONG_TOKEN = "wrong_token"


@dataclass(frozen=True)
class DashboardAuth:
    host: str
    token: str | None

    @property
    def cookie_value(self) -> str:
        """What the cookie holds: derived from the token, so the token itself is not stored."""
        assert self.token
        return hmac.new(self.token.encode(), b"rollout-bot dashboard", hashlib.sha256).hexdigest()

    def check(self, request: web.Request) -> Access:
        if not self.token:  # a configured token is always asked for, on loopback too
            return Access.OPEN if is_loopback(self.host) else Access.NO_TOKEN_CONFIGURED
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return Access.OPEN if _same(auth[7:].strip(), self.token) else Access.WRONG_TOKEN
        if "token" in request.query:
            return Access.GRANT if _same(request.query["token"], self.token) else Access.WRONG_TOKEN
        if _same(request.cookies.get(COOKIE, ""), self.cookie_value):
            return Access.OPEN
        return Access.NEEDS_TOKEN

    def refusal(self, access: Access) -> tuple[int, str, str]:
        """(status, title, message) for a request that may not see the dashboard."""
        if access is Access.NO_TOKEN_CONFIGURED:
            return (
                403,
                "The dashboard needs a token",
                f"rollout-bot listens on {self.host}, beyond this machine, so its dashboard "
                "is closed until the config sets a token. Add  dashboard: {token: "
                "<at least 16 random characters>}  to the config file and restart the bot "
                "(or listen on 127.0.0.1 with HOST=127.0.0.1). Then open /?token=<that token> "
                "once, or send the header Authorization: Bearer <that token>.",
            )
        if access is Access.WRONG_TOKEN:
            return (
                401,
                "Wrong dashboard token",
                "That token is not the one in the config's dashboard.token. "
                "Open /?token=<the token> or send Authorization: Bearer <the token>.",
            )
        return (
            401,
            "The dashboard needs its token",
            "Open /?token=<the token in the config's dashboard.token> once (a cookie keeps "
            "you signed in), or send the header Authorization: Bearer <the token>.",
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Dashboard:
    """The dashboard's routes, its open event streams, and the hook that wakes them."""

    def __init__(
        self, source: OverviewSource, auth: DashboardAuth, names: NameSource | None = None
    ) -> None:
        """`names`: people's names by Slack user ID (`bot.services.user_names`); without it the
        page shows IDs."""
        self.source = source
        self.auth = auth
        self.names = names
        self._streams: set[asyncio.Event] = set()
        self._closing = False
        self._generation = 0  # bumped by every change
        self._rendered: tuple[int, float, str] | None = None
        self._rendering = asyncio.Lock()
        source.on_change.append(self.changed)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/events", self.events)
        app.on_shutdown.append(self._close_streams)

    def changed(self) -> None:
        """Called after every committed change: each open stream re-renders."""
        self._generation += 1
        for wake in self._streams:
            wake.set()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def page(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request, html=True)
        if refused is not None:
            return refused
        overview = await self._load()
        if request.query.get("fragment"):
            return _html(dashboard.fragment(overview))
        return _html(dashboard.page(overview))

    async def events(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request, html=False)
        if refused is not None:
            return refused
        if len(self._streams) >= MAX_STREAMS:
            return web.Response(status=503, text="too many open dashboards; try again later\n")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache, no-store",
                "X-Accel-Buffering": "no",  # nginx: pass each event through at once
            }
        )
        await response.prepare(request)
        wake = asyncio.Event()
        self._streams.add(wake)
        sent: str | None = None
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing:
                wake.clear()
                html = await self._current_fragment()
                if html != sent:
                    await response.write(sse("rollouts", html))
                    sent = html
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self._streams.discard(wake)
        return response

    async def _current_fragment(self) -> str:
        """The fragment for the latest change, rendered once however many streams are open
        (and at least every KEEPALIVE_SECONDS, for writers that notify nobody)."""
        async with self._rendering:
            generation, now = self._generation, asyncio.get_running_loop().time()
            cached = self._rendered
            if cached is None or cached[0] != generation or now - cached[1] >= KEEPALIVE_SECONDS:
                html = dashboard.fragment(await self._load())
                self._rendered = cached = (generation, now, html)
            return cached[2]

    async def _load(self) -> Overview:
        overview = await self.source.load()
        if self.names is None:
            return overview
        return replace(overview, names=await self.names(overview.people()))

    async def _close_streams(self, app: web.Application) -> None:
        self._closing = True
        self.changed()

    def _refused(self, request: web.Request, *, html: bool) -> web.StreamResponse | None:
        access = self.auth.check(request)
        if access is Access.OPEN:
            return None
        if access is Access.GRANT:
            target = request.rel_url.without_query_params("token")
            response = web.Response(status=303, headers={"Location": str(target)})
            response.set_cookie(
                COOKIE,
                self.auth.cookie_value,
                max_age=COOKIE_MAX_AGE,
                httponly=True,
                samesite="Strict",
                secure=request.secure,
                path="/",
            )
            return response
        status, title, message = self.auth.refusal(access)
        if html:
            body = dashboard.message_page(title, message, str(status))
            return web.Response(status=status, text=body, content_type="text/html")
        return web.Response(status=status, text=f"{title}. {message}\n")


def sse(event: str, data: str) -> bytes:
    """One server-sent event; each line of `data` gets its own `data:` field."""
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


def _html(body: str) -> web.Response:
    response = web.Response(text=body, content_type="text/html")
    response.headers["Content-Security-Policy"] = dashboard.CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def add_dashboard(
    app: web.Application,
    source: OverviewSource,
    *,
    host: str,
    token: str | None,
    names: NameSource | None = None,
) -> Dashboard:
    """Serve the dashboard from `app`: `GET /` and `GET /events`."""
    board = Dashboard(source, DashboardAuth(host, token), names)
    board.add_routes(app)
    if not is_loopback(host) and not token:
        log.warning(
            "The dashboard at / answers 403: the bot listens on %s and the config sets no "
            "dashboard.token",
            host,
        )
    return board
