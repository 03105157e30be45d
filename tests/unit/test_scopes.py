"""The manifest asks for the scopes the code needs, and no more: the Web API methods the
code calls, read from the code, against the scopes Slack documents for each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.standin.scopes import (
    APP_TOKEN_METHODS,
    FEATURE_SCOPES,
    METHOD_SCOPES,
    WHY,
    scopes_needed,
    sdk_method,
)
from bot.standin.web_api import SlackStandIn

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())
# A slack_sdk client method called on something named like a client, or a raw api_call.
CLIENT_CALL = re.compile(r"\bclient\.([a-z]+_[A-Za-z0-9_]+)\(")
API_CALL = re.compile(r"\bapi_call\(\s*[\"']([a-z]+\.[A-Za-z.]+)[\"']")
STAND_IN = ROOT / "bot" / "slack" / "standin.py"  # it answers the methods, calls none


def methods_called() -> dict[str, set[str]]:
    """Each Web API method the bot's code calls, and the files that call it."""
    found: dict[str, set[str]] = {}
    for package in ("bot", "commands", "storage"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == STAND_IN:
                continue
            source = path.read_text()
            names = [m for n in CLIENT_CALL.findall(source) for m in sdk_method(n)]
            names += API_CALL.findall(source)
            for method in names:
                found.setdefault(method, set()).add(str(path.relative_to(ROOT)))
    return found


def bot_scopes() -> set[str]:
    return set(MANIFEST["oauth_config"]["scopes"]["bot"])


def test_the_code_calls_these_methods_each_with_documented_scopes() -> None:
    called = methods_called()
    assert set(called) == {
        "chat.postMessage", "chat.update", "chat.postEphemeral", "chat.getPermalink",
        "users.info", "usergroups.users.list", "views.publish", "views.open",
        "files.getUploadURLExternal", "files.completeUploadExternal",
        "conversations.history", "conversations.replies", "conversations.open",
    }, called
    unknown = set(called) - set(METHOD_SCOPES) - set(APP_TOKEN_METHODS)
    assert not unknown, f"add the scopes Slack documents for {unknown} to bot/standin/scopes.py"
    assert set(called) <= set(WHY), "say in bot/standin/scopes.py why each method is called"


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    needed = scopes_needed(set(methods_called())) | set(FEATURE_SCOPES)
    assert bot_scopes() == needed, (
        f"asked but unused: {bot_scopes() - needed}; needed but not asked: {needed - bot_scopes()}"
    )
    # Scopes that no method needs are there for a feature of the app.
    assert MANIFEST["features"]["slash_commands"][0]["command"] == "/rollout"  # commands
    assert "conversations.join" not in methods_called()  # it never joins: chat:write.public
    for never in ("channels:read", "groups:read", "im:read", "mpim:history"):
        assert never not in bot_scopes()
    # It reads back its own posts (one whose answer was lost) wherever it posts: a
    # channel, a private one, a DM, whose ID conversations.open gives.
    assert {"channels:history", "groups:history", "im:history", "im:write"} <= bot_scopes()


def test_direct_messages_show_in_a_read_only_messages_tab() -> None:
    """Pages go by direct message (chat.postMessage to a user ID): they show in the app's
    Messages tab, which must be on. The bot takes nothing typed there (no message.im
    event), so typing there is off; it reads the DM back only to find a page of its own
    whose answer was lost (im:history)."""
    app_home = MANIFEST["features"]["app_home"]
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is True
    assert "message.im" not in MANIFEST["settings"]["event_subscriptions"]["bot_events"]
    assert "conversations.history" in methods_called()  # what im:history is for


def test_the_docs_list_the_same_scopes() -> None:
    doc = (ROOT / "docs" / "slack-app.md").read_text()
    table = doc.split("### Scopes", 1)[1].split("\n\n", 3)[2]  # the table after its intro
    listed = set(re.findall(r"^\| `([a-z:.]+)` \|", table, re.MULTILINE))
    assert listed == bot_scopes(), table


@pytest.fixture
async def standin() -> Any:
    server = SlackStandIn(scopes=bot_scopes() - {"users:read", "chat:write.public"})
    await server.start()
    yield server
    await server.stop()


async def test_slack_refuses_a_method_whose_scope_was_not_granted(standin: SlackStandIn) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as refused:
        await client.users_info(user="U0CORA")
    assert (refused.value.response["error"], refused.value.response["needed"]) == (
        "missing_scope", "users:read"
    )
    with pytest.raises(SlackApiError) as outside:
        await client.chat_postMessage(channel="#deployments", text="hello")
    assert outside.value.response["error"] == "not_in_channel"
    assert (await client.chat_postMessage(channel="U0CORA", text="a page"))["ok"]  # a DM
