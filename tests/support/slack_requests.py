"""Build requests exactly as Slack sends them to an app (slash commands, button clicks), signed."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.standin.signed import signed_headers as sign

TEAM_ID = "T0TEST"
TEAM_DOMAIN = "rollout-test"
API_APP_ID = "A0TEST"
BOT_ID = "B0BOT"
BOT_USER_ID = "U0BOT"
LEGACY_VERIFICATION_TOKEN = "legacy-verification-token"

_counter = itertools.count(1)


def new_trigger_id() -> str:
    """A unique trigger_id shaped like Slack's (``<digits>.<digits>.<hex>``)."""
    return f"{int(time.time())}{next(_counter):04d}.738474920.{uuid.uuid4().hex[:21]}"


def default_response_url() -> str:
    """A unique hooks.slack.com-style response_url (not reachable: pass a stand-in's instead)."""
    return f"https://hooks.slack.com/commands/{TEAM_ID}/{next(_counter)}/{uuid.uuid4().hex[:24]}"


def slack_escaped(typed: str) -> str:
    """A command's text as Slack sends it: `&`, `<` and `>` escaped (`should_escape: false`
    in the manifest, so mentions and links a person types arrive as that text)."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slash_payload(
    text: str,
    *,
    user_id: str = "U0CORA",
    user_name: str = "cora",
    channel_id: str = "C0DEPLOY",
    channel_name: str = "deployments",
    command: str = "/rollout",
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """A slash command's fields: the form body, or a Socket Mode ``slash_commands`` payload.
    `text` is what the person typed; it is sent escaped, as Slack sends it."""
    return {
        "token": LEGACY_VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": slack_escaped(text),
        "api_app_id": API_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url or default_response_url(),
        "trigger_id": trigger_id or new_trigger_id(),
    }


def slash_body(
    text: str,
    *,
    user_id: str = "U0CORA",
    user_name: str = "cora",
    channel_id: str = "C0DEPLOY",
    channel_name: str = "deployments",
    command: str = "/rollout",
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> str:
    """A slash command's urlencoded form body."""
    return urlencode(
        slash_payload(
            text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name,
            command=command,
            response_url=response_url,
            trigger_id=trigger_id,
        )
    )


def block_action_payload(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0CORA",
    user_name: str = "cora",
    channel_id: str = "C0DEPLOY",
    channel_name: str = "deployments",
    message_ts: str = "1700000000.000100",
    action_ts: str | None = None,
    response_url: str | None = None,
    block_id: str = "actions",
    message_text: str = "",
    message_blocks: list[dict[str, Any]] | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click on a bot message."""
    action_ts = action_ts or f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": LEGACY_VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": API_APP_ID,
            "team": TEAM_ID,
            "text": message_text,
            "blocks": message_blocks or [],
            "ts": message_ts,
        },
        "state": {"values": {}},
        "response_url": response_url or default_response_url(),
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts,
            }
        ],
    }


def block_action_body(action_id: str, value: str, **fields: Any) -> str:
    """A button click's form body: ``payload=<urlencoded JSON>``; `fields` as for
    `block_action_payload`."""
    payload = block_action_payload(action_id, value, **fields)
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def signed_headers(
    body: str,
    secret: str,
    *,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """Headers Slack sends with a form body (the product's own signer), and its retry
    headers when `retry_num` is given."""
    headers = sign(body, secret, now=timestamp)
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: str,
    secret: str,
    **kw: Any,
) -> tuple[int, Any]:
    """POST a signed body like Slack; returns (status, parsed JSON or text)."""
    headers = signed_headers(body, secret, **kw)
    async with session.post(url, data=body.encode(), headers=headers) as resp:
        text = await resp.text()
        if resp.content_type == "application/json" and text:
            return resp.status, json.loads(text)
        return resp.status, text


def view_submission_payload(
    view: dict[str, Any],
    values: dict[str, dict[str, str | None]],
    *,
    user_id: str = "U0CORA",
    user_name: str = "cora",
) -> dict[str, Any]:
    """A ``view_submission`` payload: `user_id` pressed Submit on `view` (a view object as
    views.open answered it) with `values` typed, ``{block_id: {action_id: text}}``."""
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text}
            for action, text in fields.items()
        }
        for block, fields in values.items()
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": LEGACY_VERIFICATION_TOKEN,
        "trigger_id": new_trigger_id(),
        "view": {**view, "state": {"values": state}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(
    view: dict[str, Any],
    values: dict[str, dict[str, str | None]],
    *,
    user_id: str = "U0CORA",
    user_name: str = "cora",
) -> str:
    """A view submission's form body: ``payload=<urlencoded JSON>``."""
    payload = view_submission_payload(view, values, user_id=user_id, user_name=user_name)
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
