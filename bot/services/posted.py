"""Posting a queued message once, even when Slack posted it and its answer was lost.

A `chat.postMessage` can be carried out by Slack and its answer never arrive: the connection
drops, the call times out, Slack answers 5xx after posting, or the bot stops between
Slack's answer and marking the message delivered. Posting again would show it twice, so
every post carries its outbox row in Slack's message metadata (`event_type`
`rollout_bot_outbox`, `event_payload` `{"outbox_id", "queued_at"}`), and before posting a
message an earlier attempt may have posted, the bot reads the conversation back with
`include_all_metadata` (`conversations.history` at the top of a channel or DM,
`conversations.replies` in a thread) and, when the message is there, takes its `ts` as
the answer instead of posting again. A file upload carries no metadata: before uploading
again a file an earlier attempt may have shared, the bot looks there for a file of the
same name and title (a chart's name carries its day, and it goes in that day's thread).

Reads want a conversation's ID: a DM's comes from `conversations.open`, and a channel
named in the config (`#deployments`) has its ID remembered from the first answer Slack
gives to a post there. Without the scopes to read (an app installed before they were
asked for), the bot says so in its log and posts again: at least once, as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.metrics import Metrics
from storage.models import OutboxRow
from storage.repository import Repository

log = logging.getLogger(__name__)

EVENT_TYPE = "rollout_bot_outbox"
PAGE = 200  # messages a read returns at once
# How many pages a lookup reads: the top of a conversation comes newest first, and the
# message, if posted, is among the newest; a thread comes oldest first, read to its end.
HISTORY_PAGES, THREAD_PAGES = 5, 25
# Answers to a read that no retry changes: the message cannot be looked for.
UNREADABLE = frozenset(
    {"missing_scope", "not_in_channel", "channel_not_found", "not_allowed_token_type"}
)
CHANNEL_REF = "channel-id:"  # the message_refs row that keeps a channel name's ID
CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


def metadata_of(row: OutboxRow) -> dict[str, Any]:
    """What a post of `row` carries, to be recognised later."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"outbox_id": row.id, "queued_at": row.created_at.isoformat()},
    }


def may_have_posted(row: OutboxRow) -> bool:
    """Whether an earlier attempt at `row` may have been carried out by Slack: any retry
    but one after nothing but 429s (Slack refused those, posting nothing; the outbox notes
    a 429 that follows another failure as `ratelimited, after …`). A lease still set when
    the row was claimed means the worker that held it stopped mid-delivery."""
    return row.lease_until is not None or (row.attempts > 0 and row.last_error != "ratelimited")


class PostOnce:
    def __init__(
        self,
        client: AsyncWebClient,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.client, self.sessions, self.clock, self.metrics = client, sessions, clock, metrics
        self.channel_ids: dict[str, str] = {}  # a channel's name in the config → its ID
        self.unsaved: dict[str, str] = {}  # of those, the ones not in the database yet

    async def post(
        self, row: OutboxRow, *, channel: str, thread_ts: str | None = None, **fields: Any
    ) -> Posted:
        """Post `row` in `channel` (in the thread of `thread_ts`), unless it is already there."""
        if may_have_posted(row):
            found = await self.find(row, channel, thread_ts)
            self.metrics.outbox_lookups.labels("found" if found else "not_found").inc()
            if found is not None:
                log.info("outbox message %s was posted already (%s)", row.id, found.ts)
                return found
        if thread_ts is not None:
            fields["thread_ts"] = thread_ts
        response = await self.client.chat_postMessage(
            channel=channel, metadata=metadata_of(row), **fields
        )
        posted = Posted(str(response["channel"]), str(response["ts"]))
        self._learn(channel, posted.channel)
        return posted

    async def find(self, row: OutboxRow, channel: str, thread_ts: str | None) -> Posted | None:
        """The message Slack posted for `row`, if it did."""
        wanted = metadata_of(row)
        return await self._find(row, channel, thread_ts, lambda m: m.get("metadata") == wanted)

    async def file_shared(
        self, row: OutboxRow, *, channel: str, thread_ts: str | None, filename: str, title: str
    ) -> bool:
        """Whether a file upload that may have been carried out was: a file of this name
        and title shared there (an upload carries no metadata). Not bounded by time: the
        bot's clock and Slack's need not agree (a manual clock, a rehearsal). Only asked
        when `may_have_posted(row)`."""

        def shared(message: Mapping[str, Any]) -> bool:
            return any(
                f.get("name") == filename and f.get("title") == title
                for f in message.get("files") or []
                if isinstance(f, Mapping)
            )

        found = await self._find(row, channel, thread_ts, shared)
        self.metrics.outbox_lookups.labels("found" if found else "not_found").inc()
        if found is not None:
            log.info("outbox file %s was shared already (%s)", row.id, found.ts)
        return found is not None

    async def _find(
        self,
        row: OutboxRow,
        channel: str,
        thread_ts: str | None,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> Posted | None:
        try:
            conversation = await self._conversation_id(channel)
            if conversation is None:
                log.warning(
                    "outbox message %s: no ID known for %s to look in; posting it again",
                    row.id, channel,
                )
                return None
            return await self._look(conversation, thread_ts, matches)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if getattr(exc.response, "status_code", 200) == 200 and error in UNREADABLE:
                log.warning(
                    "outbox message %s: cannot read %s back (%s); posting it again",
                    row.id, channel, error,
                )
                return None
            raise  # 429, 5xx: the outbox tries the whole delivery again later

    async def _look(
        self,
        conversation: str,
        thread_ts: str | None,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> Posted | None:
        cursor = ""
        for _ in range(HISTORY_PAGES if thread_ts is None else THREAD_PAGES):
            args: dict[str, Any] = {
                "channel": conversation,
                "include_all_metadata": True,
                "limit": PAGE,
            }
            if cursor:
                args["cursor"] = cursor
            if thread_ts is not None:
                try:
                    page = await self.client.conversations_replies(ts=thread_ts, **args)
                except SlackApiError as exc:
                    if exc.response.get("error") == "thread_not_found":
                        return None  # its parent is gone: nothing was posted under it
                    raise
            else:
                page = await self.client.conversations_history(**args)
            for message in page.get("messages") or []:
                if isinstance(message, Mapping) and matches(message):
                    return Posted(conversation, str(message["ts"]))
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return None
        return None

    async def _conversation_id(self, channel: str) -> str | None:
        """The ID reads take for where `channel` posts: itself when it is an ID, the DM's
        ID for a user ID, the remembered ID for a name."""
        if CONVERSATION_ID.match(channel):
            return channel
        if channel in self.channel_ids:
            return self.channel_ids[channel]
        if USER_ID.match(channel):
            opened = await self.client.conversations_open(users=channel)
            self.channel_ids[channel] = str(_field(opened, "channel")["id"])
            return self.channel_ids[channel]
        async with self.sessions() as session:
            known = await Repository(session).message_ref(CHANNEL_REF + channel)
        if known is not None:
            self.channel_ids[channel] = known.channel
            return known.channel
        return None

    def _learn(self, channel: str, channel_id: str) -> None:
        """Note a channel name's ID from Slack's answer to a post there; it is kept in the
        database with the delivery's mark (`keep`)."""
        if channel == channel_id or USER_ID.match(channel):
            return
        if self.channel_ids.get(channel) != channel_id:
            self.channel_ids[channel] = channel_id
            self.unsaved[channel] = channel_id

    async def keep(self, repo: Repository) -> dict[str, str]:
        """Write the channel IDs learnt since the last call, in the caller's transaction;
        `kept` once it committed."""
        learnt = dict(self.unsaved)
        for channel, channel_id in learnt.items():
            await repo.remember_message(CHANNEL_REF + channel, channel_id, "", self.clock.now())
        return learnt

    def kept(self, learnt: Mapping[str, str]) -> None:
        for channel, channel_id in learnt.items():
            if self.unsaved.get(channel) == channel_id:
                del self.unsaved[channel]


def _field(response: Any, name: str) -> Mapping[str, Any]:
    value = response.get(name)
    return value if isinstance(value, Mapping) else {}
