"""The on-call chain on a manual clock: who is paged when, the stop on acknowledgement,
"nobody answered", and no page twice across restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.standin.web_api import SlackStandIn
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import (
    ONCALL,
    dms,
    incident_log,
    incidents,
    open_via_opener,
    posts,
    settle,
    updates,
)

CHAIN = ONCALL + """\
    - {group: S0LEADS, wait: 10m}
  repeat: 2
  %s
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
"""

# (minutes after opening, who is paged): three levels, then the chain twice more.
EXPECTED_PAGES = [
    (0, "U0FORGE"), (5, "U0HUDSON"), (10, "U0LEAD1"), (10, "U0LEAD2"),
    (20, "U0FORGE"), (25, "U0HUDSON"), (30, "U0LEAD1"), (30, "U0LEAD2"),
    (40, "U0FORGE"), (45, "U0HUDSON"), (50, "U0LEAD1"), (50, "U0LEAD2"),
]  # fmt: skip
NOBODY_AT = 60


def config(extra: str = "") -> str:
    return CHAIN % extra


def channel_blasts(standin: SlackStandIn) -> list[dict[str, Any]]:
    return [p for p in posts(standin) if "<!channel>" in str(p.get("text", ""))]


def new_pages(standin: SlackStandIn, seen: int, minute: int) -> list[tuple[int, str]]:
    found = dms(standin)[seen:]
    return [(minute, str(p["channel"])) for p in found if "🚨" in str(p.get("text", ""))]


async def walk(
    bot: RolloutBot,
    standin: SlackStandIn,
    clock: ManualClock,
    minutes: int,
    *,
    start: int = 0,
    seen: int = 0,
) -> list[tuple[int, str]]:
    """Move the clock a minute at a time; note who was paged at which minute (counted
    from `start`), among the direct messages after the first `seen`."""
    await settle(bot)
    pages = new_pages(standin, seen, start)
    for minute in range(start + 1, start + minutes + 1):
        seen = len(dms(standin))
        await clock.advance(timedelta(minutes=1))
        await settle(bot)
        pages += new_pages(standin, seen, minute)
    return pages


async def test_three_levels_repeat_two_pages_in_order_then_tells_the_channel(
    make_bot: BotFactory, standin: SlackStandIn
) -> None:
    standin.set_usergroup("S0LEADS", ["U0LEAD1", "U0LEAD2"])
    clock = ManualClock()
    opened = clock.now()
    bot = await make_bot(config(), clock=clock)
    await open_via_opener(bot)
    blasts_before = len(channel_blasts(standin))

    pages = await walk(bot, standin, clock, 59)
    assert pages == EXPECTED_PAGES
    assert len(channel_blasts(standin)) == blasts_before  # not yet

    pages = await walk(bot, standin, clock, 1, start=59, seen=len(dms(standin)))
    assert pages == []
    blasts = channel_blasts(standin)
    assert len(blasts) == blasts_before + 1
    assert "Nobody acknowledged incident #1" in blasts[-1]["text"]
    assert "paged 3 times" in blasts[-1]["text"]

    # Nothing more, however long it stays open.
    assert await walk(bot, standin, clock, 120, start=60, seen=len(dms(standin))) == []
    assert len(channel_blasts(standin)) == blasts_before + 1

    # The incident log has the same story, with exact times.
    (incident,) = await incidents(bot)
    log = [
        (e.verb, e.target, int((e.at - opened).total_seconds() // 60))
        for e in await incident_log(bot, incident.id)
    ]
    expected_log = [("opened", "", 0)] + [
        ("paged", target, minute)
        for minute, target in [
            (0, "U0FORGE"), (5, "U0HUDSON"), (10, "S0LEADS"),
            (20, "U0FORGE"), (25, "U0HUDSON"), (30, "S0LEADS"),
            (40, "U0FORGE"), (45, "U0HUDSON"), (50, "S0LEADS"),
        ]
    ] + [("nobody answered", "", NOBODY_AT)]  # fmt: skip
    assert log == expected_log

    # Each page is also a mention in the thread the incident lives in.
    mentions = [p for p in posts(standin) if "you are paged for incident #1" in p["text"]]
    assert [m["text"].split()[0] for m in mentions] == [
        "<@U0FORGE>", "<@U0HUDSON>", "<!subteam^S0LEADS>",
    ] * 3  # fmt: skip
    assert {m.get("thread_ts") for m in mentions} == {incident.thread_ts}
    # The incident message says nobody answered, edited in place.
    assert "Nobody answered" in updates(standin)[-1]["blocks"][1]["elements"][0]["text"]


async def test_acknowledging_stops_the_chain_edits_the_thread_and_reminds(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_usergroup("S0LEADS", ["U0LEAD1"])
    clock = ManualClock()
    bot = await make_bot(config("remind_after: 30m"), clock=clock)
    await open_via_opener(bot)
    pages = await walk(bot, standin, clock, 7)
    assert pages == [(0, "U0FORGE"), (5, "U0HUDSON")]

    reply = await SlackUser(http, bot, "U0HUDSON").say("ack")
    assert reply.startswith("Acknowledged incident #1"), reply
    await settle(bot)
    (incident,) = await incidents(bot)
    assert incident.state == "acknowledged" and incident.acked_by == "U0HUDSON"
    edited = updates(standin)[-1]
    assert edited["ts"] == incident.message_ts
    status = edited["blocks"][1]["elements"][0]["text"]
    assert "Acknowledged by <@U0HUDSON>" in status
    assert f"<!date^{int(clock.now().timestamp())}^" in status
    assert [b["action_id"] for b in edited["blocks"][2]["elements"]] == ["incident_resolve"]

    # No further pages; the acknowledger is reminded every 30 minutes while it stays open.
    seen = len(dms(standin))
    for _ in range(65):
        await clock.advance(timedelta(minutes=1))
        await settle(bot)
    later = dms(standin)[seen:]
    assert [p["channel"] for p in later] == ["U0HUDSON", "U0HUDSON"]
    assert all("still open" in p["text"] for p in later)
    assert not channel_blasts(standin)

    # Acknowledging again says who already did; `ack` with nothing open says so.
    again = await SlackUser(http, bot, "U0FORGE").say("ack 1")
    assert "already acknowledged by <@U0HUDSON>" in again
    assert "no open incident" in await SlackUser(http, bot, "U0FORGE").say("ack")


async def test_no_page_twice_across_a_restart_at_any_point_of_the_chain(
    make_bot: BotFactory, standin: SlackStandIn
) -> None:
    """Stop the bot every minute and start a fresh one on the same database; the clock
    moves while it is down, so each step also comes due while nobody runs."""
    standin.set_usergroup("S0LEADS", ["U0LEAD1", "U0LEAD2"])
    clock = ManualClock()
    bot = await make_bot(config(), clock=clock)
    await open_via_opener(bot)
    await settle(bot)
    pages = new_pages(standin, 0, 0)
    for minute in range(1, 66):
        seen = len(dms(standin))
        await bot.stop()
        await clock.advance(timedelta(minutes=1))
        bot = await make_bot(config(), clock=clock)
        await settle(bot)
        pages += new_pages(standin, seen, minute)
    assert pages == EXPECTED_PAGES
    assert len(channel_blasts(standin)) == 1
    mentions = [p for p in posts(standin) if "you are paged for incident" in p["text"]]
    assert len(mentions) == 9


async def test_a_step_run_twice_pages_once(make_bot: BotFactory, standin: SlackStandIn) -> None:
    """A step claimed again (a lease that ran out, a second replica) finds the token moved."""
    clock = ManualClock()
    bot = await make_bot(config(), clock=clock)
    await bot.stop()  # no loops: this test drives the steps itself
    bot = await make_bot(config(), clock=clock)
    for task in bot._tasks:
        task.cancel()
    await open_via_opener(bot)
    await clock.advance(timedelta(minutes=5))
    from storage.repository import Repository

    async with bot.service.sessions() as session, session.begin():
        (timer,) = await Repository(session).claim_due_timers(clock.now(), timedelta(minutes=2))
    await bot.incidents.on_timer(timer)
    await bot.incidents.on_timer(timer)  # the same claim, run again
    (incident,) = await incidents(bot)
    verbs = [(e.verb, e.target) for e in await incident_log(bot, incident.id)]
    assert verbs == [("opened", ""), ("paged", "U0FORGE"), ("paged", "U0HUDSON")]


async def test_editing_the_chain_later_changes_nothing_for_an_open_incident(
    make_bot: BotFactory, standin: SlackStandIn, sqlite_url: str
) -> None:
    clock = ManualClock()
    bot = await make_bot(config(), clock=clock)
    await open_via_opener(bot)
    await settle(bot)
    await bot.stop()
    edited = config().replace("U0HUDSON, wait: 5m", "U0NEWBIE, wait: 1m")
    bot = await make_bot(edited, clock=clock)
    pages = await walk(bot, standin, clock, 6)
    assert pages == [(0, "U0FORGE"), (5, "U0HUDSON")]


async def drain(bot: RolloutBot, clock: ManualClock, tries: int = 20) -> None:
    """Settle, moving the clock a few seconds whenever a failed message waits for its retry."""
    for _ in range(tries):
        try:
            await settle(bot, timeout=1.0)
            return
        except TimeoutError:
            await clock.advance(timedelta(seconds=5))
    await settle(bot)


async def test_a_failed_direct_message_to_a_group_member_pages_nobody_twice(
    make_bot: BotFactory, standin: SlackStandIn
) -> None:
    standin.set_usergroup("S0LEADS", ["U0LEAD1", "U0LEAD2", "U0LEAD3"])
    # The second member's direct message fails once (after the first member's went out).
    standin.fail_next("chat.postMessage", status=500, channel="U0LEAD2")
    clock = ManualClock()
    bot = await make_bot(config(), clock=clock)
    await open_via_opener(bot)
    assert await walk(bot, standin, clock, 9) == [(0, "U0FORGE"), (5, "U0HUDSON")]
    seen = len(dms(standin))
    await clock.advance(timedelta(minutes=1))
    await drain(bot, clock)

    failed = [c for c in standin.calls_to("chat.postMessage") if c.failed]
    assert [(c.params["channel"], c.status) for c in failed] == [("U0LEAD2", 500)]
    paged = sorted(p["channel"] for p in dms(standin)[seen:] if "🚨" in str(p.get("text", "")))
    assert paged == ["U0LEAD1", "U0LEAD2", "U0LEAD3"]  # each once, the failed one retried
    mentions = [p for p in posts(standin) if "<!subteam^S0LEADS> you are paged" in p["text"]]
    assert len(mentions) == 1


async def test_an_empty_or_unknown_group_is_said_in_the_thread_and_the_chain_goes_on(
    make_bot: BotFactory, standin: SlackStandIn
) -> None:
    standin.set_usergroup("S0LEADS", [])
    chain = config().replace(
        "    - {group: S0LEADS, wait: 10m}",
        "    - {group: S0LEADS, wait: 10m}\n    - {group: S0GHOSTS, wait: 5m}",
    )
    clock = ManualClock()
    bot = await make_bot(chain, clock=clock)
    await open_via_opener(bot)
    pages = await walk(bot, standin, clock, 26)
    # Nobody in either group: nobody paged at 10 or 20; the chain goes on as if unanswered.
    assert pages == [(0, "U0FORGE"), (5, "U0HUDSON"), (25, "U0FORGE")]

    (incident,) = await incidents(bot)
    thread = [p for p in posts(standin) if p.get("thread_ts") == incident.thread_ts]
    notices = [p["text"] for p in thread if "nobody was paged" in p["text"]]
    assert len(notices) == 2, [p["text"] for p in thread]
    assert "<!subteam^S0LEADS> has no members" in notices[0]
    assert "incident #1" in notices[0] and "within 10m, the next level is paged" in notices[0]
    assert "<!subteam^S0GHOSTS> could not be resolved (no_such_subteam)" in notices[1]
    log = [(e.verb, e.target) for e in await incident_log(bot, incident.id)]
    assert ("nobody paged", "S0LEADS") in log and ("nobody paged", "S0GHOSTS") in log
