"""Which retries read the conversation back before posting: any but a retry after nothing
but 429s, and the message is recognised by the metadata its post carried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.services.posted import EVENT_TYPE, may_have_posted, metadata_of
from storage.models import OutboxRow

QUEUED = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def row(attempts: int = 0, last_error: str = "", lease_until: datetime | None = None) -> OutboxRow:
    return OutboxRow(
        id=42,
        channel="#deployments",
        kind="thread_reply",
        payload={"text": "checkpoint"},
        created_at=QUEUED,
        attempts=attempts,
        next_attempt_at=QUEUED,
        lease_until=lease_until,
        last_error=last_error,
    )


def test_a_first_try_posts_without_reading() -> None:
    assert not may_have_posted(row())


def test_a_retry_after_an_unanswered_attempt_reads_first() -> None:
    for error in ("http_500", "http_503", "ServerDisconnectedError: Server disconnected",
                  "TimeoutError: ", "internal_error"):
        assert may_have_posted(row(attempts=1, last_error=error)), error


def test_a_retry_after_only_429s_posts_without_reading() -> None:
    assert not may_have_posted(row(attempts=3, last_error="ratelimited"))
    # A 429 that came after an unanswered attempt: that attempt may still have posted.
    assert may_have_posted(row(attempts=2, last_error="ratelimited, after http_502"))


def test_a_lease_left_by_a_stopped_worker_reads_first() -> None:
    assert may_have_posted(row(lease_until=QUEUED + timedelta(seconds=60)))


def test_the_metadata_names_the_row_and_when_it_was_queued() -> None:
    assert metadata_of(row()) == {
        "event_type": EVENT_TYPE,
        "event_payload": {"outbox_id": 42, "queued_at": "2026-12-02T09:00:00+00:00"},
    }
