"""Three `rollout-bot serve` processes on one PostgreSQL database behind one Slack app: a
compressed rollout with checkpoints, a breach, a rollback and an escalation, commands spread
over the replicas as a load balancer would, and the replica in the middle of a gate tick
SIGKILLed twice (restarted after the first kill, not after the second). Slack sees every
message and page once, in order per channel, and the gates are measured again at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import literal_column, select

from bot.standin.web_api import Call, SlackStandIn
from storage.models import OutboxRow
from tests.support.replicas import (
    ERROR_RATIO,
    FLAG,
    GATE_TIMER,
    Metrics,
    Replicas,
    Takeover,
    replica_config,
    service_metrics,
)

INTERVAL = timedelta(seconds=30)  # the gate's


@pytest.fixture
async def metrics() -> AsyncIterator[Metrics]:
    async with service_metrics(FLAG) as running:
        yield running


# What each kind of outbox row becomes in Slack, and whether its text is the row's own.
METHODS = {
    "thread_parent": "chat.postMessage",
    "thread_reply": "chat.postMessage",
    "message": "chat.postMessage",
    "incident_post": "chat.postMessage",
    "incident_reply": "chat.postMessage",
    "parent_update": "chat.update",
    "incident_update": "chat.update",
    "ephemeral": "chat.postEphemeral",
}


def is_dm(call: Call) -> bool:
    return str(call.params.get("channel", "")).startswith("D")


def delivered_once_in_order(
    rows: list[OutboxRow], transactions: dict[int, str], calls: list[Call]
) -> list[str]:
    """Problems found matching every delivered outbox row to the Slack call that delivered
    it: a row Slack never saw or saw twice, a call no row explains, or rows one transaction
    queued for a channel that reached Slack out of the order they were queued in.

    Across transactions the order is the order they committed in, which PostgreSQL's ids
    need not follow (an id is drawn at insert time), so it is checked apart: see `STORY`."""
    problems: list[str] = []
    by_text: dict[tuple[str, str], list[int]] = defaultdict(list)  # (method, text) → calls
    for index, call in enumerate(calls):
        by_text[(call.method, str(call.params.get("text", "")))].append(index)
    queued: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
    for row in rows:
        if row.kind in METHODS:
            queued[(METHODS[row.kind], str(row.payload.get("text", "")))].append(row)
    for key, same in queued.items():
        seen = len(by_text.get(key, []))
        if seen != len(same):
            problems.append(f"{len(same)} queued, {seen} in Slack: {key[0]} {key[1][:60]!r}")
    for key in by_text.keys() - queued.keys():
        problems.append(f"in Slack, never queued: {key[0]} {key[1][:60]!r}")
    # Rows whose text is theirs alone land at a known call; check each transaction's.
    landed = {
        same[0].id: by_text[key][0]
        for key, same in queued.items()
        if len(same) == 1 and len(by_text.get(key, [])) == 1
    }
    groups: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
    for row in rows:
        if row.id in landed:
            groups[(transactions[row.id], row.channel)].append(row)
    for (_, channel), together in groups.items():
        order = [landed[row.id] for row in sorted(together, key=lambda r: r.id)]
        if order != sorted(order):
            problems.append(f"{channel}: {[r.kind for r in together]} delivered out of order")
    return problems


# What the thread says, in the order it happened (each step waits for the one before).
STORY = (
    "checkout: progressing at 5 %",
    "<@U0CORA> started checkout 0 % → 5 %",
    "<@U0CORA> advanced checkout 5 % → 25 %",
    "<@U0FORGE> paused checkout at 25 %",
    "<@U0CORA> resumed checkout at 25 %",
    "rollout-bot rolled back checkout 25 % → 0 % automatically",
    "🚨 Incident #1: checkout rolled back automatically",
    "<@U0FORGE> you are paged for incident #1",
    "<@U0HUDSON> you are paged for incident #1",
)


async def test_three_replicas_run_a_rollout_through_two_kills(
    tmp_path: Path, standin: SlackStandIn, metrics: Metrics
) -> None:
    service, prometheus, proxy = metrics.service, metrics.prometheus, metrics.proxy
    takeovers: list[Takeover] = []
    config = replica_config(proxy.url)
    async with Replicas.running(tmp_path, standin, config, proxy, count=3) as cluster:
        assert sorted(await cluster.holdings()) == ["replica-0", "replica-1", "replica-2"]
        assert "progressing at 5 %" in await cluster.say("U0CORA", "start checkout")
        await cluster.settled()
        assert "5 %" in await cluster.say("U0FORGE", "status checkout")

        # The soak, a gate tick every 30 s and a checkpoint every minute; half way, the
        # replica in the middle of the tick is killed, and restarted.
        await cluster.tick()
        victim, takeover = await cluster.kill_mid_tick(GATE_TIMER)
        takeovers.append(takeover)
        await cluster.settled()
        await victim.start(within=60)
        for _ in range(2):
            await cluster.tick()
        assert "25 %" in await cluster.say("U0CORA", "advance next checkout")
        await cluster.settled()
        assert "paused" in await cluster.say("U0FORGE", "pause checkout -- a look at the logs")
        assert "progressing" in await cluster.say("U0CORA", "resume checkout")
        await cluster.tick()

        # A breach: red for the gate's whole minute rolls the rollout back and pages. In
        # the middle of it the replica running the tick is killed again, for good.
        service.set(FLAG, rps=50, error_rate=0.5, latency_s=0.05)
        await prometheus.wait_for_value(  # Prometheus itself sees the errors
            ERROR_RATIO.replace("{flag}", FLAG), lambda v: v is not None and v > 0.05, timeout=60
        )
        await cluster.tick()
        victim, takeover = await cluster.kill_mid_tick(GATE_TIMER)
        takeovers.append(takeover)
        await cluster.settled()
        await cluster.tick()
        await standin.wait_for("chat.postMessage", lambda c: c.params.get("channel") == "U0FORGE",
                               timeout=60)
        status = await cluster.say("U0CORA", "status checkout")
        assert "rolled back" in status, status

        # Nobody answers Forge's page: after two minutes Hudson is paged, and acknowledges.
        for _ in range(4):
            await cluster.tick()
        await standin.wait_for("chat.postMessage", lambda c: c.params.get("channel") == "U0HUDSON",
                               timeout=60)
        assert (await cluster.say("U0HUDSON", "ack")).startswith("Acknowledged incident #1")
        await cluster.settled()
        for _ in range(2):
            await cluster.tick()

        assert len(cluster.live) == 2  # the second victim stayed down
        async with cluster.sessions() as session:
            rows = list(
                (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
            )
            # The transaction that queued each row (PostgreSQL's xmin).
            transactions = {
                row_id: str(xmin)
                for row_id, xmin in await session.execute(
                    select(OutboxRow.id, literal_column("xmin::text"))
                )
            }

    # Every message and page reached Slack exactly once, in order per channel: each
    # transaction's rows in the order queued, and the thread in the order things happened.
    assert all(row.delivered_at is not None for row in rows), [r.kind for r in rows]
    calls = [c for c in standin.calls if not c.failed and c.method in METHODS.values()]
    # Edits of pages (`page_update`) are drawn when sent, so no row holds their text.
    page_edits = [c for c in calls if c.method == "chat.update" and is_dm(c)]
    calls = [c for c in calls if c not in page_edits]
    assert delivered_once_in_order(rows, transactions, calls) == []
    in_thread = [  # the channel and the rollout's thread, not the pages' DMs
        str(c.params.get("text", ""))
        for c in calls
        if c.method == "chat.postMessage" and not str(c.params["channel"]).startswith("U")
    ]
    story = [line for t in in_thread for line in STORY if t.startswith(line)]
    assert story == list(STORY), in_thread
    pages = [c for c in calls if str(c.params["channel"]).startswith("U0")]
    assert [c.params["channel"] for c in pages] == ["U0FORGE", "U0HUDSON"]
    # Once acknowledged, each page was edited once, in place.
    assert sorted((c.params["channel"], c.params["ts"]) for c in page_edits) == sorted(
        (p.response["channel"], p.response["ts"]) for p in pages
    )
    texts = [str(c.params.get("text", "")) for c in calls]
    assert sum("checkpoint" in t.lower() for t in texts) >= 2, texts
    assert sum("rolled back" in t.lower() and "error_rate" in t for t in texts) >= 1, texts

    # Each kill was taken over within one tick: the next gate query came before the clock
    # moved on at all, let alone by a gate interval.
    for takeover in takeovers:
        assert takeover.clock_at_next_query - takeover.killed_at < INTERVAL, takeover
    print(
        "takeover after SIGKILL: "
        + ", ".join(f"{t.victim} {t.seconds:.2f}s" for t in takeovers)
    )
