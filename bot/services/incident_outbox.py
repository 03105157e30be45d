"""Outbox kinds for incidents: the incident's message (posted once, its ts remembered so it
can be edited in place), replies in its thread, and pages to a user group.

- `incident_post`: post in the rollout's thread, or in the channel when the incident
  belongs to no rollout (or the rollout has no thread yet); remember where it went.
- `incident_update`: `chat.update` of that message, in place.
- `incident_reply`: a reply in the thread the incident message lives in.
- `page_update`: edit in place the pages one person got for an incident, once someone
  acknowledged or resolved it (each page's place is remembered when it is posted).
- `group_page`: resolve a user group with `usergroups.users.list` at page time and queue
  one direct message per member (Slack has no DM to a group), in the transaction that marks
  the group page delivered: a member whose message fails is retried alone, and nobody is
  paged twice. A group with nobody in it, or that cannot be resolved, is said in the
  incident's thread; the chain goes on as for a page nobody answered.
"""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk.errors import SlackApiError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.escalation import ChainSnapshot
from bot.render.incident_blocks import (
    nobody_paged_message,
    page_dm,
    page_ref,
    page_refs_of,
    parse_page_ref,
)
from bot.services.incidents import BOT, view_of
from bot.services.outbox import (
    PERMANENT_ERRORS,
    OutboxWorker,
    Sender,
    classify,
    message_fields,
)
from storage.incidents import Incidents
from storage.message_refs import refs_starting
from storage.models import OutboxRow
from storage.repository import Repository

log = logging.getLogger(__name__)

# Answers of usergroups.users.list that no retry changes: the group cannot be resolved.
UNRESOLVABLE = frozenset({"no_such_subteam", "subteam_not_found"}) | PERMANENT_ERRORS


async def _incident(worker: OutboxWorker, row: OutboxRow) -> tuple[str | None, str | None]:
    """(channel, thread ts) the incident message lives in, once it was posted."""
    async with worker.sessions() as session:
        incident = await Incidents(session).get(int(row.payload["incident"]))
    if incident is None:
        return None, None
    return incident.message_channel, incident.thread_ts


async def _rollout_thread(worker: OutboxWorker, row: OutboxRow) -> tuple[str | None, str | None]:
    if row.rollout is None:
        return None, None
    async with worker.sessions() as session:
        rollout = await Repository(session).rollout(row.rollout)
    if rollout is None:
        return None, None
    return rollout.thread_channel, rollout.thread_ts


async def post_incident(worker: OutboxWorker, row: OutboxRow) -> None:
    channel, thread = await _rollout_thread(worker, row)
    if channel is not None and thread is not None:
        posted = await worker.post(row, channel=channel, thread_ts=thread, **message_fields(row))
    else:
        posted = await worker.post(row, channel=row.channel, **message_fields(row))
    incident = int(row.payload["incident"])
    await worker.record_sent(
        lambda repo: Incidents(repo.session).set_message(
            incident, posted.channel, posted.ts, thread or posted.ts
        )
    )


async def update_incident(worker: OutboxWorker, row: OutboxRow) -> None:
    async with worker.sessions() as session:
        incident = await Incidents(session).get(int(row.payload["incident"]))
    if incident is None or incident.message_channel is None or incident.message_ts is None:
        return  # nothing to edit: the message was never posted
    await worker.client.chat_update(
        channel=incident.message_channel, ts=incident.message_ts, **message_fields(row)
    )


async def reply_incident(worker: OutboxWorker, row: OutboxRow) -> None:
    channel, thread = await _incident(worker, row)
    if channel is None or thread is None:
        await worker.post(row, channel=row.channel, **message_fields(row))
        return
    await worker.post(row, channel=channel, thread_ts=thread, **message_fields(row))


async def update_pages(worker: OutboxWorker, row: OutboxRow) -> None:
    """Edit the pages one person got for an incident, in place, to what they say now that
    someone answered (see `incident_blocks.page_dm`)."""
    incident_id, user = int(row.payload["incident"]), str(row.payload["user"])
    async with worker.sessions() as session:
        incident = await Incidents(session).get(incident_id)
        refs = await refs_starting(session, page_refs_of(incident_id, user))
    if incident is None:
        return
    view, snapshot = view_of(incident), ChainSnapshot.from_json(incident.chain)
    for ref in refs:
        parsed = parse_page_ref(ref.ref)
        if parsed is None or parsed[1] != user:
            continue
        message = page_dm(view, parsed[2], parsed[3], snapshot)
        await worker.client.chat_update(
            channel=ref.channel, ts=ref.ts, text=message["text"], blocks=message["blocks"]
        )


async def page_group(worker: OutboxWorker, row: OutboxRow) -> None:
    group = str(row.payload["group"])
    try:
        response = await worker.client.usergroups_users_list(usergroup=group)
    except SlackApiError as exc:
        error = classify(exc).error
        if error not in UNRESOLVABLE:
            raise  # the outbox retries it: nobody was paged yet
        members, problem = [], f"could not be resolved ({error})"
    else:
        members = list(dict.fromkeys(str(u) for u in response.get("users") or []))
        problem = "has no members"
    now = worker.clock.now()
    async with worker.sessions() as session, session.begin():
        if not await _expand_once(session, row.id, now):
            return  # another delivery of this row already queued the pages
        repo = Repository(session)
        incident, level, round_ = (
            int(row.payload.get(k, 0)) for k in ("incident", "level", "round")
        )
        for user in members:
            ref = page_ref(incident, user, level, round_)
            repo.enqueue(user, "message", {**message_fields(row), "ref": ref}, now)
        if not members:
            await _nobody_paged(session, row, group, problem, now)


async def _expand_once(session: AsyncSession, message_id: int, now: datetime) -> bool:
    """Mark a group page delivered unless it already was; True when this call did. The
    outbox marks it again after the sender returns (and counts the attempt)."""
    result = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id == message_id,
            OutboxRow.delivered_at.is_(None),
            OutboxRow.failed_at.is_(None),
        )
        .values(delivered_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _nobody_paged(
    session: AsyncSession, row: OutboxRow, group: str, problem: str, now: datetime
) -> None:
    """Say in the incident's thread that a group page reached nobody, and log it."""
    payload = row.payload
    if payload.get("incident") is None or payload.get("reply_channel") is None:
        log.warning("user group %s %s: nobody was paged", group, problem)
        return
    incident_id = int(payload["incident"])
    level, round_ = int(payload.get("level", 0)), int(payload.get("round", 0))
    incident = await Incidents(session).get(incident_id)
    snapshot = ChainSnapshot.from_json(incident.chain) if incident is not None else None
    message = nobody_paged_message(incident_id, group, problem, level, round_, snapshot)
    Repository(session).enqueue(
        str(payload["reply_channel"]),
        "incident_reply",
        message,
        now,
        rollout=incident.rollout if incident is not None else None,
    )
    Incidents(session).log(
        incident_id,
        now,
        "nobody paged",
        BOT,
        target=group,
        level=level,
        round=round_,
        detail=f"user group {problem}",
    )
    log.warning("incident %s: user group %s %s; nobody was paged", incident_id, group, problem)


SENDERS: dict[str, Sender] = {
    "incident_post": post_incident,
    "incident_update": update_incident,
    "incident_reply": reply_incident,
    "group_page": page_group,
    "page_update": update_pages,
}
