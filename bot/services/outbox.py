"""Delivers queued Slack messages: in order per channel, with retries, backoff and 429 waits.

A message is leased before it is sent and marked delivered after, so a crashed bot
delivers it after restart. A post whose answer was lost (a dropped connection, a timeout,
a 5xx, a crash before the mark) is looked for in the conversation before it is posted
again (`bot.services.posted`), so it shows once. Edits (`chat.update`) are retried as they
are: the same edit made twice shows the same message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.errors import DeliveryFailed
from bot.metrics import Metrics
from bot.services.posted import Posted, PostOnce, may_have_posted
from bot.services.waiting import wait_until_due
from storage.claims import OUTBOX, Claims, claiming, item_name
from storage.db import unavailable
from storage.models import OutboxRow
from storage.repository import Repository

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE = timedelta(seconds=60)
# How long a write recording what Slack already took (delivered, where it landed) keeps
# trying while the database is busy: well inside the lease, so no other pass sends it again.
RECORD_FOR = LEASE / 2
MAX_ATTEMPTS = 12  # backoff doubles from 1 s to 5 min: about half an hour of trying
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "is_archived",
        "user_not_found",
        "user_not_in_channel",
        "cant_update_message",
    }
)


Sender = Callable[["OutboxWorker", OutboxRow], Awaitable[None]]


class OutboxWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: AsyncWebClient,
        clock: Clock,
        metrics: Metrics,
        *,
        poll_seconds: float = 1.0,
        senders: Mapping[str, Sender] | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.sessions = sessions
        # On PostgreSQL, a message in flight is held by this replica's advisory lock: if
        # the replica dies, another delivers it on its next poll (see storage.claims).
        self.claims = claims
        self.senders = {**SENDERS, **(senders or {})}  # more kinds, e.g. incident messages
        self.client = client
        self.clock = clock
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.posts = PostOnce(client, sessions, clock, metrics)
        self.kick = asyncio.Event()
        self.stopping = False  # set by `drain`: finish the pass in flight, then return

    def drain(self) -> None:
        """Ask `run` to return after the deliveries in flight, each recorded as done or
        failed: cancelling one in the middle of its transaction could hang the stop."""
        self.stopping = True
        self.kick.set()

    async def run(self) -> None:
        while not self.stopping:
            try:
                delivered = await self.deliver_due()
            except Exception:
                log.exception("outbox pass failed; trying again")
                delivered = 0
            if not delivered and not self.stopping:
                try:
                    await self._wait()
                except Exception:  # e.g. the database locked past its busy timeout
                    log.exception("outbox wait failed; trying again")
                    await asyncio.sleep(
                        self.poll_seconds
                    )  # real time: a manual clock may stand still

    async def deliver_due(self) -> int:
        """Deliver the due head of every channel once. Returns how many were attempted."""
        now = self.clock.now()
        # A claim that does not commit holds nothing (`claiming` lets it go).
        async with claiming(self.claims), self.sessions() as session, session.begin():
            repo = Repository(session)
            heads = await repo.claim_outbox_heads(now, LEASE, claims=self.claims)
            self.metrics.outbox_depth.set(await repo.outbox_depth())
        await asyncio.gather(*(self._deliver_held(row) for row in heads))
        return len(heads)

    async def _deliver_held(self, row: OutboxRow) -> None:
        try:
            await self._deliver(row)
        finally:  # recorded as done or to retry: another replica may claim it now
            if self.claims is not None:
                await asyncio.shield(self.claims.release(item_name(OUTBOX, row.id)))

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            await self.senders[row.kind](self, row)
        except DeliveryFailed as failure:
            await self._failed(row, failure)
        except SlackApiError as exc:
            await self._failed(row, classify(exc))
        except (ClientError, TimeoutError, OSError) as exc:
            await self._failed(row, DeliveryFailed(f"{type(exc).__name__}: {exc}"))
        else:
            learnt = await self.record_sent(self._done_and_learnt(row))
            self.posts.kept(learnt)
            self.metrics.deliveries.inc()

    def _done_and_learnt(
        self, row: OutboxRow
    ) -> Callable[[Repository], Awaitable[dict[str, str]]]:
        async def write(repo: Repository) -> dict[str, str]:
            await repo.outbox_done(row.id, self.clock.now())
            return await self.posts.keep(repo)  # channel IDs learnt, for the next start

        return write

    async def record_sent(self, write: Callable[[Repository], Awaitable[T]]) -> T:
        """Write what follows from a message Slack has taken, in its own transaction. Slack
        cannot take it back, so a busy database (another writer past the busy timeout) is
        waited out rather than left to the lease, whose expiry would send it a second time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_FOR.total_seconds()
        pause = 0.05
        while True:
            try:
                async with self.sessions() as session, session.begin():
                    result = await write(Repository(session))
                return result
            except Exception as exc:
                if unavailable(exc) != "busy" or loop.time() + pause > deadline:
                    raise
                log.warning("database busy recording a sent message; trying again")
            await asyncio.sleep(pause)  # real time: a manual clock may stand still
            pause = min(pause * 2, 1.0)

    async def _failed(self, row: OutboxRow, failure: DeliveryFailed) -> None:
        now = self.clock.now()
        self.metrics.delivery_failures.labels(failure.error.split(":")[0][:40]).inc()
        async with self.sessions() as session, session.begin():
            repo = Repository(session)
            if failure.permanent or row.attempts + 1 >= MAX_ATTEMPTS:
                log.error(
                    "giving up on outbox message %s (%s): %s", row.id, row.kind, failure.error
                )
                await repo.outbox_give_up(row.id, now, failure.error)
                return
            delay = failure.retry_after
            if delay is None:
                delay = min(2.0**row.attempts, 300.0)
            log.warning(
                "outbox message %s failed (%s); retrying in %.0fs", row.id, failure.error, delay
            )
            error = failure.error
            if error == "ratelimited" and may_have_posted(row):  # still: look before posting
                error = f"ratelimited, after {row.last_error or 'an unfinished attempt'}"
            await repo.outbox_retry(row.id, now + timedelta(seconds=delay), error)

    async def _wait(self) -> None:
        async with self.sessions() as session:
            next_due = await Repository(session).outbox_next_due()
        await wait_until_due(self.clock, next_due, self.kick, self.poll_seconds)

    # --- senders, one per kind of message ---------------------------------------------

    async def post(
        self, row: OutboxRow, *, channel: str, thread_ts: str | None = None, **fields: Any
    ) -> Posted:
        """`chat.postMessage` of `row`, once: see `bot.services.posted`."""
        return await self.posts.post(row, channel=channel, thread_ts=thread_ts, **fields)

    async def _thread_target(self, row: OutboxRow) -> tuple[str | None, str | None]:
        if row.rollout is None:
            return None, None
        async with self.sessions() as session:
            rollout = await Repository(session).rollout(row.rollout)
        if rollout is None:
            return None, None
        return rollout.thread_channel, rollout.thread_ts

    async def _post_parent(self, row: OutboxRow) -> None:
        posted = await self.post(row, channel=row.channel, **_message(row))
        if row.rollout is not None:
            rollout, channel, ts = row.rollout, posted.channel, posted.ts
            await self.record_sent(lambda repo: repo.set_thread(rollout, channel, ts))

    async def _post_reply(self, row: OutboxRow) -> None:
        channel, ts = await self._thread_target(row)
        if channel is None or ts is None:
            await self._post_parent(row)  # no thread yet: this message starts one
            return
        await self.post(
            row,
            channel=channel,
            thread_ts=ts,
            reply_broadcast=bool(row.payload.get("reply_broadcast")),
            **_message(row),
        )

    async def _update_parent(self, row: OutboxRow) -> None:
        channel, ts = await self._thread_target(row)
        if channel is None or ts is None:
            return  # nothing to edit: the parent was never posted
        await self.client.chat_update(channel=channel, ts=ts, **_message(row))

    async def _post_ephemeral(self, row: OutboxRow) -> None:
        await self.client.chat_postEphemeral(
            channel=row.channel, user=row.payload["user"], **_message(row)
        )

    async def _post_message(self, row: OutboxRow) -> None:
        """A plain message; with a `ref`, where it landed is kept for later replies."""
        posted = await self.post(row, channel=row.channel, **_message(row))
        ref = row.payload.get("ref")
        if ref:
            channel, ts = posted.channel, posted.ts
            await self.record_sent(
                lambda repo: repo.remember_message(ref, channel, ts, self.clock.now())
            )

    async def _upload_file(self, row: OutboxRow) -> None:
        """A file (a chart), in the thread of the message named by `thread_ref` when it
        was posted, or in the thread of the rollout the row names, else at the top of the
        channel. Slack's flow: get an upload URL, send the bytes, complete the upload. An
        upload an earlier attempt may have completed is looked for first (`file_shared`)."""
        channel, thread_ts = row.channel, None
        ref = row.payload.get("thread_ref")
        if ref:
            async with self.sessions() as session:
                posted = await Repository(session).message_ref(ref)
            if posted is not None:
                channel, thread_ts = posted.channel, posted.ts
        elif row.rollout is not None:  # in the rollout's thread, once it has one
            in_channel, in_thread = await self._thread_target(row)
            if in_channel is not None and in_thread is not None:
                channel, thread_ts = in_channel, in_thread
        filename = row.payload["filename"]
        title = row.payload.get("title", filename)
        if may_have_posted(row) and await self.posts.file_shared(
            row, channel=channel, thread_ts=thread_ts, filename=filename, title=title
        ):
            return
        await self.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=base64.b64decode(row.payload["content_b64"]),
            filename=filename,
            title=title,
            alt_txt=row.payload.get("alt_txt") or None,  # files.getUploadURLExternal takes it
            initial_comment=row.payload.get("comment") or None,
        )


SENDERS: dict[str, Sender] = {
    "thread_parent": OutboxWorker._post_parent,
    "thread_reply": OutboxWorker._post_reply,
    "parent_update": OutboxWorker._update_parent,
    "ephemeral": OutboxWorker._post_ephemeral,
    "message": OutboxWorker._post_message,
    "file": OutboxWorker._upload_file,
}


def message_fields(row: OutboxRow) -> dict[str, Any]:
    """The text and blocks of a queued message, as chat.postMessage takes them."""
    return _message(row)


def _message(row: OutboxRow) -> dict[str, Any]:
    payload = {"text": row.payload.get("text", "")}
    if row.payload.get("blocks"):
        payload["blocks"] = row.payload["blocks"]
    return payload


def classify(exc: SlackApiError) -> DeliveryFailed:
    response = exc.response
    status = getattr(response, "status_code", 200)
    if status == 429:
        headers = getattr(response, "headers", {}) or {}
        retry_after = headers.get("Retry-After") or headers.get("retry-after") or "1"
        return DeliveryFailed("ratelimited", retry_after=float(retry_after))
    error = str(response.get("error", f"http_{status}")) if status < 500 else f"http_{status}"
    return DeliveryFailed(error, permanent=error in PERMANENT_ERRORS)
