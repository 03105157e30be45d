"""Incidents from the bot's own decisions; acknowledging, resolving and silencing from
commands and buttons; who may; races."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import aiohttp

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.rollout import Announce, Change, Decision, OpenIncident, State
from bot.render import buttons as actions
from bot.services.rollouts import AUTOMATIC, Actor
from bot.standin.web_api import SlackStandIn
from storage.models import TimerRow
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import (
    ONCALL,
    click,
    dms,
    incident_log,
    incidents,
    open_via_opener,
    posts,
    settle,
    told,
    updates,
)

CONFIG = ONCALL + """\
    - {group: S0LEADS, wait: 10m}
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
"""


async def test_the_bots_own_rollback_opens_an_incident_and_pages(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    """A decision carrying OpenIncident, recorded by RolloutService in its transaction
    (the control loop's automatic rollback produces exactly this)."""
    bot = await make_bot(CONFIG)
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    spec = bot.service.specs["phase-4"]
    status = (await bot.service.statuses())["phase-4"]
    rolled = replace(status, state=State.ROLLED_BACK, percent=0, version=status.version + 1)
    effect = OpenIncident(
        "automatic_rollback",
        "error_rate 2.1 % above 0.5 % for 5m at 5 %: rolled back to 0 %",
        'query: sum(rate(http_requests_total{code=~"5.."}[1m]))',
    )
    decision = Decision(
        rolled,
        Change("rollback", status.state, rolled.state, status.percent, 0, "error_rate red"),
        (Announce(broadcast=True), effect),
    )
    for _ in range(2):  # the same trouble again while the incident is live: no second one
        async with bot.service.sessions() as session, session.begin():
            await bot.service._record(
                session, spec, decision, Actor(AUTOMATIC, "automatic"), bot.clock.now()
            )
        bot.incidents.notify()
    await settle(bot)

    (incident,) = await incidents(bot)
    assert (incident.kind, incident.rollout, incident.source) == (
        "automatic_rollback", "phase-4", "bot",
    )  # fmt: skip
    (page,) = dms(standin)
    assert page["channel"] == "U0FORGE"
    assert "error_rate 2.1 % above 0.5 %" in page["text"]
    buttons = [b["action_id"] for b in page["blocks"][-1]["elements"]]
    assert buttons == [actions.INCIDENT_ACK, actions.INCIDENT_RESOLVE, actions.INCIDENT_SILENCE]
    mention = [p for p in posts(standin) if p["text"].startswith("<@U0FORGE> you are paged")]
    assert mention and mention[0]["thread_ts"] == incident.thread_ts
    verbs = [e.verb for e in await incident_log(bot, incident.id)]
    assert verbs == ["opened", "paged", "seen again"]


async def test_only_the_chain_and_operators_may_respond(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_usergroup("S0LEADS", ["U0LEAD1"])
    bot = await make_bot(CONFIG)
    await open_via_opener(bot)
    await open_via_opener(bot, kind="no_data", summary="error_rate: no data for 10m")

    refused = await SlackUser(http, bot, "U0STRANGER").say("ack 1")
    assert refused.startswith("You may not acknowledge incident #1"), refused
    assert "<@U0FORGE>, <@U0HUDSON>, <!subteam^S0LEADS>, <@U0OPS>, <@U0CORA>" in refused
    listed = await SlackUser(http, bot, "U0OPS").say("ack")
    assert "2 incidents are open" in listed and "/rollout ack 1" in listed
    assert "not an incident number" in await SlackUser(http, bot, "U0OPS").say("ack soon")
    assert "There is no incident 9" in await SlackUser(http, bot, "U0OPS").say("ack 9")

    # A member of a user group in the chain may (resolved with usergroups.users.list).
    assert (await SlackUser(http, bot, "U0LEAD1").say("ack INC-1")).startswith("Acknowledged")
    # An operator may; with one left unacknowledged, `ack` takes it.
    assert (await SlackUser(http, bot, "U0OPS").say("ack")).startswith("Acknowledged incident #2")
    rows = await incidents(bot)
    assert [(r.state, r.acked_by) for r in rows] == [
        ("acknowledged", "U0LEAD1"), ("acknowledged", "U0OPS"),
    ]  # fmt: skip


async def test_a_lead_outside_the_chain_may_acknowledge_as_the_readme_says(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    """Leads are the chain's last resort and answer for the rollout: one who is not in an
    incident's chain may still take it at 3 a.m."""
    bot = await make_bot(CONFIG)
    await open_via_opener(bot)
    reply = await SlackUser(http, bot, "U0CORA").say("ack 1")
    assert reply.startswith("Acknowledged incident #1"), reply
    assert [(r.state, r.acked_by) for r in await incidents(bot)] == [("acknowledged", "U0CORA")]


async def test_the_page_buttons_acknowledge_silence_and_resolve(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(CONFIG, clock=clock)
    await open_via_opener(bot)
    await settle(bot)
    (page,) = dms(standin)

    # Silence: nobody is paged for an hour; then the chain starts again from the top.
    tag = await click(http, bot, standin, page, actions.INCIDENT_SILENCE, "U0FORGE")
    assert "Silenced incident #1" in await told(standin, tag)
    await settle(bot)
    assert "Silenced until" in str(updates(standin)[-1]["blocks"])
    for _ in range(59):
        await clock.advance(timedelta(minutes=1))
        await settle(bot)
    assert len(dms(standin)) == 1
    await clock.advance(timedelta(minutes=1))
    await settle(bot)
    assert [p["channel"] for p in dms(standin)] == ["U0FORGE", "U0FORGE"]

    # Acknowledge from the page.
    tag = await click(http, bot, standin, page, actions.INCIDENT_ACK, "U0FORGE")
    assert (await told(standin, tag)).startswith("Acknowledged incident #1")
    await settle(bot)
    assert "Acknowledged by <@U0FORGE>" in str(updates(standin)[-1]["blocks"])
    # A stale button press on a second copy of the page changes nothing.
    tag = await click(http, bot, standin, page, actions.INCIDENT_ACK, "U0HUDSON")
    assert "already acknowledged by <@U0FORGE>" in await told(standin, tag)

    # Resolve.
    tag = await click(http, bot, standin, page, actions.INCIDENT_RESOLVE, "U0FORGE")
    await told(standin, tag)
    assert not standin.calls_to("chat.postEphemeral")  # nothing needed the bot in a channel
    await settle(bot)
    (incident,) = await incidents(bot)
    assert (incident.state, incident.acked_by, incident.resolved_by) == (
        "resolved", "U0FORGE", "U0FORGE",
    )  # fmt: skip
    assert "Resolved by <@U0FORGE>" in str(updates(standin)[-1]["blocks"])
    async with bot.service.sessions() as session:
        assert await session.get(TimerRow, f"incident:{incident.id}") is None
    for _ in range(30):
        await clock.advance(timedelta(minutes=1))
    await settle(bot)
    assert len(dms(standin)) == 2


async def test_acks_racing_a_resolve_end_in_one_consistent_state_sqlite(
    make_bot: BotFactory,
) -> None:
    await race(await make_bot(CONFIG))


async def test_acks_racing_a_resolve_end_in_one_consistent_state_postgresql(
    make_bot: BotFactory, postgres_url: str
) -> None:
    await race(await make_bot(CONFIG, database_url=postgres_url))


async def race(bot: RolloutBot) -> None:
    for round_ in range(5):
        await open_via_opener(bot, kind=f"trouble_{round_}")
        (incident,) = [i for i in await incidents(bot) if i.kind == f"trouble_{round_}"]
        answers = await asyncio.gather(
            bot.incidents.acknowledge(incident.id, "U0FORGE"),
            bot.incidents.acknowledge(incident.id, "U0HUDSON"),
            bot.incidents.resolve(incident.id, "U0OPS"),
        )
        acks = [a for a in answers[:2] if a.ok]
        assert len(acks) <= 1, answers
        assert answers[2].ok, answers
        (row,) = [i for i in await incidents(bot) if i.id == incident.id]
        assert row.state == "resolved" and row.resolved_by == "U0OPS" and row.live_key is None
        log = [e.verb for e in await incident_log(bot, incident.id)]
        assert log.count("acknowledged") == len(acks)
        assert log[-1] == "resolved"
        if acks:
            assert row.acked_by in ("U0FORGE", "U0HUDSON")
        async with bot.service.sessions() as session:
            assert await session.get(TimerRow, f"incident:{incident.id}") is None
    # Two acknowledgements alone: exactly one wins, the other is told who did.
    await open_via_opener(bot, kind="two_acks")
    (incident,) = [i for i in await incidents(bot) if i.kind == "two_acks"]
    answers = await asyncio.gather(
        bot.incidents.acknowledge(incident.id, "U0FORGE"),
        bot.incidents.acknowledge(incident.id, "U0HUDSON"),
    )
    assert sorted(a.ok for a in answers) == [False, True]
    assert "already acknowledged by" in next(a.text for a in answers if not a.ok)
