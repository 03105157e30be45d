"""The dashboard's HTML, tested as data: what a reader sees, escaped, with no external assets."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from aiohttp.test_utils import make_mocked_request

from bot.config import parse_config
from bot.domain.gates import GateView as DomainGateView
from bot.domain.gates import Outcome
from bot.domain.rollout import RolloutStatus, State
from bot.inbound.dashboard_routes import COOKIE, Access, DashboardAuth, is_loopback, sse
from bot.render import dashboard_page as dashboard
from bot.render.overview_model import GateView, IncidentView, Overview, build_overview

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
CONFIG = parse_config(
    """
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
    gates: [error_rate]
  - name: search-v2
    flag: search_v2
    plan: fast
gates:
  error_rate:
    query: 'sum(rate(errors{flag="{flag}"}[1m]))'
    fail_above: 0.01
"""
)
SPECS = CONFIG.specs()


def event(at: datetime, verb: str, frm: int, to: int, reason: str = "") -> dict[str, object]:
    return {
        "at": at,
        "actor": "U0CORA",
        "source": "slash",
        "verb": verb,
        "from_percent": frm,
        "to_percent": to,
        "reason": reason,
        "forced": False,
    }


def overview(**kw: object) -> Overview:
    statuses = {
        "phase-4": RolloutStatus(State.PROGRESSING, 25, 2, NOW - timedelta(hours=2), "", 3),
        "search-v2": RolloutStatus(
            State.PAUSED, 10, 0, NOW, 'errors <script>alert("x")</script> & more', 2
        ),
    }
    events = {
        "phase-4": [
            event(NOW - timedelta(days=1), "start", 0, 5),
            event(NOW - timedelta(hours=2), "advance", 5, 25),
        ]
    }
    green = {"error_rate": DomainGateView("error_rate", Outcome.PASS, NOW - timedelta(hours=2))}
    kw.setdefault("observations", {"phase-4": green})
    return build_overview(SPECS, statuses, events, NOW, **kw)  # type: ignore[arg-type]


class Text(HTMLParser):
    """The page's visible text, as a reader (or innerText) sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def test_each_rollout_shows_stage_percent_bar_and_state() -> None:
    html = dashboard.page(overview())
    text = visible(html)
    assert "phase-4 progressing" in text
    assert "25 % · stage 3 of 6" in text
    assert "flag phase_4_deployment · plan safe · advance manual" in text
    assert "search-v2 paused" in text
    assert "10 % · stage 1 of 4" in text
    assert 'aria-valuenow="25"' in html and '<span style="width:25%">' in html
    assert '<li class="current">25 %</li>' in html
    assert '<li class="reached">5 %</li>' in html


def test_hold_reasons_are_escaped() -> None:
    html = dashboard.page(overview())
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html
    assert 'Held: errors <script>alert("x")</script> & more' in visible(html)


def test_the_timeline_lists_recent_events_newest_first_in_the_configured_timezone() -> None:
    text = visible(dashboard.page(overview(timezone="Europe/Paris")))
    newest = text.index("08:30 CET @U0CORA advanced 5 % → 25 % (slash)")
    older = text.index("2026-11-01 10:30 CET @U0CORA started 0 % → 5 % (slash)")
    assert newest < older
    assert "Nothing has happened yet." in text  # search-v2 has no events
    assert "soak 1d, until 2026-11-03 08:30 CET" in text


def test_gate_and_incident_placeholders_render_when_the_data_has_them() -> None:
    empty = visible(dashboard.page(overview()))
    assert "error_rate: no measurement yet." in empty
    assert "Open incidents" not in empty

    full = overview(
        gates={"phase-4": [GateView("error_rate", "fail", 0.0123, 0.01)]},
        incidents=[IncidentView("INC-7", "error_rate red <5m>", "U0FORGE", "phase-4")],
    )
    html = dashboard.page(full)
    text = visible(html)
    assert "error_rate red 0.0123 0.01" in text
    assert '<td class="gate-fail">red</td>' in html
    assert "Open incidents (1) INC-7 error_rate red <5m> (held by @U0FORGE)" in text
    assert "&lt;5m&gt;" in html


def test_the_page_is_self_contained_and_its_script_is_the_hashed_one() -> None:
    html = dashboard.page(overview())
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external assets"
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert scripts == [dashboard.SCRIPT]
    assert dashboard.SCRIPT_HASH in dashboard.CONTENT_SECURITY_POLICY
    assert 'new EventSource("events")' in dashboard.SCRIPT


def test_no_rollouts_says_how_to_add_one() -> None:
    empty = build_overview({}, {}, {}, NOW)
    assert "No rollouts are configured" in visible(dashboard.fragment(empty))


def test_server_sent_events_split_lines_into_data_fields() -> None:
    assert sse("rollouts", "<p>a</p>\n<p>b</p>") == (
        b"event: rollouts\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    )
    assert b"\r" not in sse("rollouts", "a\r\nb\rc")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("rollout-bot.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


TOKEN = "s3cret-dashboard-token"


def access(
    host: str, token: str | None, path: str = "/", headers: dict[str, str] | None = None
) -> Access:
    request = make_mocked_request("GET", path, headers=headers or {})
    return DashboardAuth(host, token).check(request)


def test_who_may_see_the_dashboard() -> None:
    cookie = DashboardAuth("0.0.0.0", TOKEN).cookie_value
    assert access("127.0.0.1", None) is Access.OPEN
    assert access("0.0.0.0", None) is Access.NO_TOKEN_CONFIGURED
    assert access("0.0.0.0", TOKEN) is Access.NEEDS_TOKEN
    assert access("0.0.0.0", TOKEN, f"/?token={TOKEN}") is Access.GRANT
    assert access("0.0.0.0", TOKEN, "/?token=nope") is Access.WRONG_TOKEN
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert access("0.0.0.0", TOKEN, headers=bearer) is Access.OPEN
    wrong = {"Authorization": "Bearer nope"}
    assert access("0.0.0.0", TOKEN, headers=wrong) is Access.WRONG_TOKEN
    assert access("0.0.0.0", TOKEN, headers={"Cookie": f"{COOKIE}={cookie}"}) is Access.OPEN
    assert access("0.0.0.0", TOKEN, headers={"Cookie": f"{COOKIE}={TOKEN}"}) is (Access.NEEDS_TOKEN)
    assert TOKEN not in cookie


def test_the_refusal_without_a_token_says_how_to_set_one() -> None:
    status, title, message = DashboardAuth("0.0.0.0", None).refusal(Access.NO_TOKEN_CONFIGURED)
    assert status == 403
    assert "dashboard: {token:" in message and "HOST=127.0.0.1" in message
    page = dashboard.message_page(title, message, "403")
    assert "dashboard: {token: &lt;at least 16 random characters&gt;}" in page
