"""The App Home view as data, within Slack's limits, accepted by the Slack stand-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import parse_config
from bot.demo.terminal import render
from bot.domain.rollout import RolloutStatus, State
from bot.render import buttons as actions
from bot.render.app_home import VIEW_BLOCK_LIMIT, home_view
from bot.render.overview_model import IncidentView, build_overview
from bot.standin.web_api import SlackStandIn

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def config(count: int) -> str:
    lines = ["rollouts:"]
    lines += [f"  - {{name: r{i:03d}, flag: flag_{i}, plan: safe}}" for i in range(count)]
    return "\n".join(lines)


def test_the_home_tab_shows_each_rollout_and_the_incidents_the_viewer_holds() -> None:
    specs = parse_config(config(2)).specs()
    statuses = {
        "r000": RolloutStatus(State.PAUSED, 10, 1, NOW, "latency up after deploy", 4),
    }
    events = {
        "r000": [
            {
                "at": NOW - timedelta(hours=1),
                "actor": "U0FORGE",
                "source": "slash",
                "verb": "pause",
                "from_percent": 10,
                "to_percent": 10,
                "reason": "latency up after deploy",
            },
        ]
    }
    incidents = [
        IncidentView("INC-3", "r000: error_rate red", "U0FORGE", "r000"),
        IncidentView("INC-4", "r000: no data", "U0HUDSON", "r000"),
    ]
    overview = build_overview(specs, statuses, events, NOW, incidents=incidents)

    text = render(home_view(overview, "U0FORGE"))
    assert "Incidents you hold (1)\n• INC-3 r000: error_rate red · r000" in text
    assert "INC-4" in text  # shown under its rollout, not as held
    assert "⏸️ r000 · flag flag_0 · paused at 10 %" in text
    assert "▰▱▱▱▱▱▱▱▱▱ 10 % · stage 2 of 6" in text
    assert "Held: latency up after deploy" in text
    assert "Last: @U0FORGE paused 10 % → 10 % 2026-11-02 08:00 UTC" in text
    assert "⚪ r001 · flag flag_1 · not started" in text

    assert "You hold no open incidents, and none is paging you." in render(
        home_view(overview, "U0CORA")
    )


def buttons(view: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The buttons of the view by the first line of the section they sit on."""
    found: dict[str, list[dict[str, Any]]] = {}
    for block in view["blocks"]:
        accessory = block.get("accessory")
        if block["type"] == "section" and accessory and accessory["type"] == "button":
            found.setdefault(block["text"]["text"].splitlines()[0], []).append(accessory)
    return found


def test_the_home_tab_acknowledges_what_pages_you_and_resolves_what_you_hold() -> None:
    specs = parse_config(config(2)).specs()
    incidents = [
        IncidentView("#1", "error_rate red", "", "r000", paged=("U0FORGE", "U0HUDSON"), number=1),
        IncidentView("#2", "disk <!channel> full", "U0FORGE", "", paged=("U0FORGE",), number=2),
        IncidentView("#3", "latency", "", "r001", paged=("U0HUDSON",), number=3),
    ]
    overview = build_overview(specs, {}, {}, NOW, incidents=incidents)
    view = home_view(overview, "U0FORGE")
    found = buttons(view)
    (ack,) = found["• `#1` error_rate red · *r000*"]
    assert (ack["text"]["text"], ack["action_id"], ack["style"]) == (
        "Acknowledge", "incident_ack", "primary"
    )
    assert actions.IncidentButtonValue.decode(ack["value"]).incident == 1
    (resolve,) = found["• `#2` disk &lt;!channel&gt; full"]  # shown as typed, pings no one
    assert (resolve["text"]["text"], resolve["action_id"]) == ("Resolve", "incident_resolve")
    assert not any("#3" in line for line in found)  # paging someone else
    text = render(view)
    assert text.index("Paging you (1)") < text.index("Incidents you hold (1)")


def test_each_rollout_links_to_its_thread_and_a_notice_shows_on_top() -> None:
    specs = parse_config(config(2)).specs()
    overview = build_overview(specs, {}, {}, NOW)
    link = "https://rollout-test.slack.com/archives/C0DEPLOY/p1700000000000100"
    view = home_view(overview, "U0CORA", threads={"r000": link}, notice="Acknowledged #1.")
    found = buttons(view)
    (thread,) = [b for line, bs in found.items() if "r000" in line for b in bs]
    assert (thread["text"]["text"], thread["url"], thread["action_id"]) == (
        "Open thread", link, "rollout_open_thread"
    )
    assert not [b for line, bs in found.items() if "r001" in line for b in bs]  # no thread yet
    assert view["blocks"][2] == {
        "type": "section", "text": {"type": "mrkdwn", "text": "Acknowledged #1."}
    }


async def test_many_rollouts_fold_into_and_n_more_within_slacks_limits(
    standin: SlackStandIn,
) -> None:
    specs = parse_config(config(150)).specs()
    long_reason = "a very long reason " * 300
    statuses = {n: RolloutStatus(State.PAUSED, 5, 0, NOW, long_reason, 2) for n in specs}
    view = home_view(build_overview(specs, statuses, {}, NOW), "U0CORA")

    assert view["type"] == "home"
    assert len(view["blocks"]) <= VIEW_BLOCK_LIMIT
    for block in view["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    last = view["blocks"][-1]["text"]["text"]
    shown = sum(1 for b in view["blocks"] if b["type"] == "section" and "⏸️" in b["text"]["text"])
    assert 40 <= shown < 150
    assert last.startswith(f"…and {150 - shown} more: r{shown:03d}, ")

    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    response = await client.views_publish(user_id="U0CORA", view=view)
    assert response["ok"]
    assert standin.home_tabs["U0CORA"]["blocks"] == view["blocks"]
