"""Answers to the person who clicked a button, through the click's `response_url`.

Slack hands every button click (on a message) a `response_url`: a post to it shows a message
only the clicker sees, in the conversation the button was in, whether or not the bot is a
member there, with no Web API scope. It takes five posts within thirty minutes. The answer
is queued like every other message (per clicker, in order, retried on 429 and 5xx), so the
click's HTTP answer does not wait for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.errors import DeliveryFailed
from bot.services.outbox import OutboxWorker, Sender
from storage.models import OutboxRow
from storage.repository import Repository

KIND = "response"
TIMEOUT_SECONDS = 10


def queue_answer(repo: Repository, url: str, user: str, text: str, now: datetime) -> None:
    """An ephemeral answer to `user` through `url`, after whatever they were told before."""
    repo.enqueue(f"response:{user}", KIND, {"url": url, "user": user, "text": text}, now)


async def post_response(worker: OutboxWorker, row: OutboxRow) -> None:
    payload: dict[str, Any] = row.payload
    webhook = AsyncWebhookClient(str(payload["url"]), timeout=TIMEOUT_SECONDS)
    sent = await webhook.send(
        text=str(payload.get("text") or ""),
        blocks=payload.get("blocks") or None,
        response_type="ephemeral",
        replace_original=False,  # the message with the buttons stays as it is
    )
    if sent.status_code == 200:
        return
    if sent.status_code == 429:
        retry = (sent.headers or {}).get("Retry-After") or (sent.headers or {}).get("retry-after")
        raise DeliveryFailed("ratelimited", retry_after=float(retry or 1))
    if sent.status_code >= 500:
        raise DeliveryFailed(f"http_{sent.status_code}")
    # expired_url, used_url, no_text…: no retry changes the answer
    raise DeliveryFailed(f"response_url {sent.status_code}: {sent.body[:200]}", permanent=True)


SENDERS: dict[str, Sender] = {KIND: post_response}
