"""Requests as Slack sends them to the app (a slash command, a button click), signed with
the app's signing secret: how the demo's people type into the bot. Pure but for `now`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.render.blocks import escape

TEAM_ID = "T0TEST"  # the stand-in's workspace
TEAM_DOMAIN = "rollout-test"
API_APP_ID = "A0TEST"
BOT_USER_ID = "U0BOT"


def slash_command(
    text: str, *, user_id: str, user_name: str, channel_id: str, response_url: str
) -> str:
    """A `/rollout` slash command's urlencoded form body."""
    command, _, rest = text.strip().partition(" ")
    return urlencode(
        {
            "token": "unused",
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": "deployments",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": escape(rest.strip()),  # as Slack escapes what a person typed
            "api_app_id": API_APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex[:21]}",
        }
    )


def button_click(
    action_id: str,
    value: str,
    *,
    user_id: str,
    user_name: str,
    channel_id: str,
    message_ts: str,
    response_url: str,
    message: dict[str, Any] | None = None,
) -> str:
    """A `block_actions` form body: `user_id` pressed the button `action_id` on a message."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": "unused",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex[:21]}",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "directmessage"},
        "message": {"type": "message", "user": BOT_USER_ID, "ts": message_ts, **(message or {})},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions",
                "text": {"type": "plain_text", "text": action_id},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def signed_headers(body: str, secret: str, *, now: float | None = None) -> dict[str, str]:
    """Content type, timestamp and the v0 signature Slack puts on every request."""
    stamp = str(int(time.time() if now is None else now))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
    }
