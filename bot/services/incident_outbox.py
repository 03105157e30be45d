"""Outbox kinds for incidents: the incident's message (posted once, its ts remembered so it
can be edited in place), replies in its thread, and pages to a user group.

- `incident_post`: post in the rollout's thread, or in the channel when the incident
  belongs to no rollout (or the rollout has no thread yet); remember where it went.
- `incident_update`: `chat.update` of that message, in place.
- `incident_reply`: a reply in the thread the incident message lives in.
- `group_page`: resolve a user group with `usergroups.users.list` at page time and DM each
  member (Slack has no DM to a group).
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from bot.services.outbox import Delivery, OutboxWorker, Sender, message_fields
from storage.incidents import Incidents
from storage.models import OutboxRow
from storage.repository import Repository


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
        response = await worker.client.chat_postMessage(
            channel=channel, thread_ts=thread, **message_fields(row)
        )
    else:
        response = await worker.client.chat_postMessage(channel=row.channel, **message_fields(row))
    posted_channel, ts = str(response["channel"]), str(response["ts"])
    async with worker.sessions() as session, session.begin():
        await Incidents(session).set_message(
            int(row.payload["incident"]), posted_channel, ts, thread or ts
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
        await worker.client.chat_postMessage(channel=row.channel, **message_fields(row))
        return
    await worker.client.chat_postMessage(channel=channel, thread_ts=thread, **message_fields(row))


async def page_group(worker: OutboxWorker, row: OutboxRow) -> None:
    group = str(row.payload["group"])
    try:
        response = await worker.client.usergroups_users_list(usergroup=group)
    except SlackApiError as exc:
        error = str(exc.response.get("error", ""))
        if error in ("no_such_subteam", "subteam_not_found"):
            raise Delivery(f"user group {group}: {error}", permanent=True) from exc
        raise
    for user in response.get("users") or []:
        await worker.client.chat_postMessage(channel=str(user), **message_fields(row))


SENDERS: dict[str, Sender] = {
    "incident_post": post_incident,
    "incident_update": update_incident,
    "incident_reply": reply_incident,
    "group_page": page_group,
}
