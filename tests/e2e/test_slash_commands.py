"""The real server on a free port, signed slash commands as Slack sends them, and what the
Slack stand-in receives."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import time
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.standin.web_api import SlackStandIn
from tests.conftest import SECRET, BotFactory, SlackUser
from tests.support.incidents import settle
from tests.support.slack_requests import (
    block_action_body,
    new_trigger_id,
    post_signed,
    signed_headers,
    slash_body,
    view_submission_body,
)

ONE_ROLLOUT = """
channel: "#deployments"
roles:
  leads: [U0CORA]
  operators: [U0FORGE]
rollouts:
  - name: phase-4
    flag: phase_4_deployment
    plan: safe
"""
SOAK = timedelta(days=1)  # of each stage of `safe` up to 75 %


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def api(http: aiohttp.ClientSession, bot: RolloutBot, path: str) -> Any:
    async with http.get(f"{bot.url}{path}") as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def thread_texts(standin: SlackStandIn, count: int) -> list[str]:
    """The first `count` replies in threads that say what someone did (checkpoints, which
    a test moving its clock by days may see, aside)."""
    calls = await standin.wait_for(
        "chat.postMessage",
        lambda c: "thread_ts" in c.params and not str(c.params["text"]).startswith("Checkpoint"),
        count=count,
    )
    return [c.params["text"] for c in calls]


async def test_every_verb_end_to_end(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(ONE_ROLLOUT, clock=clock)
    cora = SlackUser(http, bot, "U0CORA")
    forge = SlackUser(http, bot, "U0FORGE")

    assert "/rollout advance PERCENT|next" in await cora.say("help")
    assert "phase-4* (phase_4_deployment) · not started" in await cora.say("status")

    assert "now progressing at 5 %" in await cora.say("start phase-4")
    parent = (await standin.wait_for("chat.postMessage", lambda c: "thread_ts" not in c.params))[0]
    assert parent.params["channel"] == "#deployments"
    assert "▰▱▱▱▱▱▱▱▱▱` *5 %* · stage 1 of 6" in dump(parent.params["blocks"])
    thread_ts = parent.response["ts"]

    await clock.advance(SOAK)
    assert "now progressing at 10 %" in await cora.say("advance next")
    await clock.advance(SOAK)
    assert "now progressing at 25 %" in await cora.say("advance 25")
    assert "paused at 25 %" in await forge.say("pause -- waiting for the on-call to come back")
    assert "progressing at 25 %" in await cora.say("resume")
    assert "paused at 10 %" in await forge.say("rollback to 10 -- error budget burning")

    texts = await thread_texts(standin, 6)
    assert texts == [
        "<@U0CORA> started phase-4 0 % → 5 %\nSoak at this stage: 1d.",
        "<@U0CORA> advanced phase-4 5 % → 10 %\nSoak at this stage: 1d.",
        "<@U0CORA> advanced phase-4 10 % → 25 %\nSoak at this stage: 1d.",
        "<@U0FORGE> paused phase-4 at 25 %\nReason: waiting for the on-call to come back",
        "<@U0CORA> resumed phase-4 at 25 %\nSoak at this stage: 1d.",
        "<@U0FORGE> rolled back phase-4 25 % → 10 %\nReason: error budget burning\n"
        "Held at 10 % until someone types `/rollout resume phase-4`.",
    ]
    replies = [c for c in standin.calls_to("chat.postMessage") if "thread_ts" in c.params]
    assert {c.params["thread_ts"] for c in replies} == {thread_ts}
    assert replies[-1].params["reply_broadcast"] in (True, "true", "1")  # rollbacks show in channel

    updates = await standin.wait_for("chat.update", count=5)
    assert updates[-1].params["ts"] == thread_ts
    last_parent = dump(updates[-1].params["blocks"])
    assert "*10 %* · stage 2 of 6" in last_parent
    assert "Held: rolled back from 25 %: error budget burning" in last_parent

    history = await cora.say("history")
    assert history.count("\n•") == 6
    assert "rolled back 25 % → 10 % (slash) — error budget burning" in history

    state = await api(http, bot, "/api/rollouts/phase-4")
    assert {k: state[k] for k in ("name", "flag", "plan", "state", "percent", "version")} == {
        "name": "phase-4",
        "flag": "phase_4_deployment",
        "plan": "safe",
        "state": "paused",
        "percent": 10,
        "version": 6,
    }
    assert [e["verb"] for e in state["events"]] == [
        "start",
        "advance",
        "advance",
        "pause",
        "resume",
        "rollback",
    ]
    assert state["events"][3] | {"at": None} == {
        "at": None,
        "actor": "U0FORGE",
        "source": "slash",
        "verb": "pause",
        "from_state": "progressing",
        "to_state": "paused",
        "from_percent": 25,
        "to_percent": 25,
        "reason": "waiting for the on-call to come back",
        "forced": False,
        "version": 4,
        "gates": {},
        "policy": {},
        "every_rollout": False,
    }

    assert "now rolled back to 0 %" in await forge.say("rollback phase-4")
    assert "it resumes only by starting again" in await cora.say("resume phase-4")
    assert "now progressing at 5 %" in await cora.say("start phase-4")
    assert (await api(http, bot, "/api/rollouts"))[0]["percent"] == 5


async def test_advance_above_100_names_the_current_percent(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    assert "Done:" in await cora.say("advance 25 force straight to the quarter")
    reply = await cora.say("advance 150")
    assert "Percent must be above the current 25 and at most 100 (you typed 150)." in reply
    assert "`/rollout advance next phase-4`" in reply


async def test_two_active_rollouts_need_a_name(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot()  # phase-4 and search-v2
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start phase-4")
    reply = await cora.say("start")  # one active, one not: starting is still a choice
    assert "Name the rollout to start." in reply and "`search-v2` (not started)" in reply
    await cora.say("start search-v2")
    reply = await cora.say("advance 25")
    assert "2 rollouts are active: `phase-4` (progressing at 5 %), `search-v2`" in reply
    assert "Name which one" in reply
    reply = await cora.say("advance 25 phase-5")
    assert "`phase-5` is not a rollout; did you mean `phase-4`?\nKnown rollouts:" in reply
    assert "progressing at 25 %" in await cora.say("advance 25 phase-4 force canary is clean")

    reply = await cora.say("rollback to 10 phase-4 latency creeping up")  # name after percent
    assert "phase-4" in reply and "10 %" in reply
    four, search = await api(http, bot, "/api/rollouts/phase-4"), await api(
        http, bot, "/api/rollouts/search-v2"
    )
    assert (four["state"], four["percent"], four["hold_reason"]) == (
        "paused", 10, "rolled back from 25 %: latency creeping up"
    )
    assert (search["state"], search["percent"]) == ("progressing", 10)  # untouched


async def test_roles_refuse_and_say_who_may(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    forge = SlackUser(http, bot, "U0FORGE")  # operator
    stranger = SlackUser(http, bot, "U0STRANGER")
    assert (await forge.say("start phase-4")) == (
        "You may not start phase-4: that needs a lead. "
        "Who may: <@U0CORA>.\nAsk one of them, or change the roles in the config."
    )
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    reply = await stranger.say("rollback phase-4")
    assert "You may not rollback phase-4: that needs an operator or a lead" in reply
    assert "Who may: <@U0FORGE>, <@U0CORA>." in reply
    reply = await forge.say("advance 50 phase-4 force noise")
    assert "You may not force an advance of phase-4: that needs a lead." in reply
    assert "Who may: <@U0CORA>." in reply
    assert "*phase-4* (phase_4_deployment) · progressing at 5 %" in await stranger.say("status")
    await settle(bot)  # everything queued has reached Slack: nothing more is coming
    posted = [c.params["text"] for c in standin.calls_to("chat.postMessage")]
    assert posted == [
        "phase-4: progressing at 5 %",
        "<@U0CORA> started phase-4 0 % → 5 %\nSoak at this stage: 1d.",
    ]
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["percent"], state["version"]) == ("progressing", 5, 1)


async def test_without_roles_everyone_may(
    make_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot("rollouts:\n  - {name: solo, flag: solo}\n")
    anyone = SlackUser(http, bot, "U0ANYONE")
    assert "progressing at 5 %" in await anyone.say("start")
    assert "rolled back to 0 %" in await anyone.say("rollback")
    history = await anyone.say("history")  # the only rollout, active or not
    assert "*solo* — last 2 changes:" in history, history


BAD_FORMS = [
    ("not a form", "a=b&&c", 400),
    ("JSON that is not an object", "[1, 2]", 400),
    ("JSON garbage", "{not json", 400),
    ("payload that is not JSON", "payload=%7Bnope", 400),
    ("slash command without user", "command=%2Frollout&text=status&channel_id=C1", 400),
    ("slash command without channel", "command=%2Frollout&text=status&user_id=U1", 400),
    ("neither command nor interaction", "foo=bar", 400),
    ("empty body", "", 400),
]


@pytest.mark.parametrize(("why", "body", "status"), BAD_FORMS, ids=[b[0] for b in BAD_FORMS])
async def test_malformed_but_signed_bodies_get_4xx(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    why: str,
    body: str,
    status: int,
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    got, reply = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    assert got == status, reply
    assert "error" in reply
    await assert_nothing_changed(bot, standin, http)


async def test_a_body_that_is_not_utf8_gets_400_and_a_bogus_charset_is_ignored(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    url = f"{bot.url}/slack/events"
    body = slash_body("start phase-4 cafe")
    raw = body.encode().replace(b"cafe", b"caf\xe9")  # Latin-1, as no Slack request is
    async with http.post(url, data=raw, headers=signed_headers(body, SECRET)) as r:
        assert (r.status, await r.json()) == (400, {"error": "the body is not UTF-8 text"})
    await assert_nothing_changed(bot, standin, http)

    body = slash_body("start phase-4")  # signed by Slack: the charset label is not read
    headers = {
        **signed_headers(body, SECRET),
        "Content-Type": "application/x-www-form-urlencoded; charset=bogus",
    }
    async with http.post(url, data=body.encode(), headers=headers) as r:
        assert r.status == 200
        assert "phase-4 is now progressing at 5 %" in (await r.json())["text"]


async def test_bad_signatures_get_401(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    url = f"{bot.url}/slack/events"
    body = slash_body("start phase-4")
    cases = [
        await post_signed(http, url, body, "wrong-secret"),
        await post_signed(http, url, body, SECRET, timestamp=int(time.time()) - 301),
        await post_signed(http, url, body, SECRET, timestamp=int(time.time()) + 400),
    ]
    async with http.post(
        url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    ) as r:
        cases.append((r.status, await r.json()))
    async with http.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": "yesterday",
            "X-Slack-Signature": "v0=00",
        },
    ) as r:
        cases.append((r.status, await r.json()))
    tampered_headers = {
        **__import__("tests.support.slack_requests", fromlist=["x"]).signed_headers(body, SECRET)
    }
    async with http.post(url, data=body.replace("start", "advance"), headers=tampered_headers) as r:
        cases.append((r.status, await r.json()))
    assert cases == [(401, {"error": "invalid request"})] * 6
    await assert_nothing_changed(bot, standin, http)


GRAMMAR_ERRORS = [
    ("advnce 25", "`advnce` is not a /rollout command.", "Did you mean `/rollout advance"),
    ("advance", "Say how far to advance", "Usage"),
    ("advance fast", "`fast` is not a percent", "Usage"),
    ("advance ²", "`²` is not a percent", "Usage"),
    ("advance 0", "No rollout is active.", "Type `/rollout advance NAME`"),
    ("advance 25 nope", "`nope` is not a rollout.", "Known rollouts: `phase-4`"),
    ("advance 25 force", "A forced advance needs a reason", "Usage"),
    ("start nope", "`nope` is not a rollout.", "Known rollouts"),
    ("rollback to", "`to` needs a percent", "Usage"),
    ("rollback to 200", "not a percent between 0 and 100", "Usage"),
    ("rollback", "No rollout is active.", "Known rollouts: `phase-4` (not started)"),
    ("pause", "No rollout is active.", "/rollout pause NAME"),
    ("resume phase-4", "phase-4 is not started, not paused.", "/rollout status phase-4"),
    ("ack a b", "at most one incident", "Usage: `/rollout ack"),
    ("history nope", "`nope` is not a rollout.", "Known rollouts"),
    ("pause " + "x" * 2100, "the limit is 2000", "Shorten the reason"),
]


@pytest.mark.parametrize(
    ("text", "problem", "hint"), GRAMMAR_ERRORS, ids=[g[0][:20] for g in GRAMMAR_ERRORS]
)
async def test_every_grammar_error_gets_a_clear_ephemeral_reply(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    text: str,
    problem: str,
    hint: str,
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    reply = await SlackUser(http, bot, "U0CORA").say(text)
    assert problem in reply
    assert hint in reply
    await assert_nothing_changed(bot, standin, http)


async def hold_write_lock(sqlite_url: str) -> sqlite3.Connection:
    """Take SQLite's write lock from another connection, as another writer would. Taken in
    a thread: waiting for it on the event loop would stall the bot that holds it now."""
    blocker = sqlite3.connect(
        sqlite_url.split("///", 1)[1], isolation_level=None, check_same_thread=False
    )
    await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")
    return blocker


async def assert_nothing_changed(
    bot: RolloutBot, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["version"], state["events"]) == ("pending", 0, [])
    await settle(bot)  # nothing queued that could still reach Slack
    assert standin.calls_to("chat.postMessage") == []


async def test_slack_retries_act_once(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    body = slash_body("start phase-4", user_id="U0CORA")
    url = f"{bot.url}/slack/events"
    first = await post_signed(http, url, body, SECRET)
    retry = await post_signed(http, url, body, SECRET, retry_num=1)
    assert first[0] == retry[0] == 200
    assert retry[1]["text"] == first[1]["text"]
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["version"], len(state["events"])) == (1, 1)
    await thread_texts(standin, 1)
    await settle(bot)  # nothing queued that could still reach Slack
    assert len(standin.calls_to("chat.postMessage")) == 2  # the parent and one reply


async def test_two_concurrent_advances_one_wins(
    make_bot: BotFactory, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    # Another writer holds the lock for a moment, so both commands read the rollout
    # before either can write: they are concurrent for sure, not by luck of timing.
    blocker = await hold_write_lock(sqlite_url)
    release = asyncio.get_running_loop().call_later(0.5, blocker.execute, "COMMIT")
    try:
        replies = await asyncio.gather(
            cora.say("advance next force both at once"),
            cora.say("advance next force both at once"),
        )
    finally:
        release.cancel()
        blocker.close()
    winners = [r for r in replies if r.startswith("Done:")]
    assert len(winners) == 1, replies
    (loser,) = [r for r in replies if not r.startswith("Done:")]
    assert "phase-4 moved while you were acting" in loser
    assert "Nothing was done" in loser
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["percent"], state["version"]) == (10, 2)


_answers = iter(range(1, 1_000_000))


async def click(
    http: aiohttp.ClientSession, bot: RolloutBot, standin: SlackStandIn, *args: Any, **kw: Any
) -> tuple[int, str]:
    """Click a button on the rollout's thread parent as drawn now (arguments as for
    `click_body`). Returns the HTTP status and the tag of the click's response_url (its
    posts are `response_url:<tag>` calls)."""
    body, tag = await click_body(bot, standin, *args, **kw)
    status, _ = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
    return status, tag


async def click_body(
    bot: RolloutBot,
    standin: SlackStandIn,
    action_id: str,
    user: str = "U0CORA",
    action_ts: str | None = None,
    trigger_id: str | None = None,
) -> tuple[str, str]:
    """The signed-to-be body of a click on the parent as drawn now, and its answer's tag."""
    await settle(bot)  # the parent as the bot last drew it has reached Slack
    parent = (await standin.wait_for("chat.postMessage", lambda c: "thread_ts" not in c.params))[0]
    message_ts = parent.response["ts"]
    latest = standin.calls_to("chat.update") or [parent]
    buttons = next(b for b in latest[-1].params["blocks"] if b["type"] == "actions")["elements"]
    button = next(b for b in buttons if b["action_id"] == action_id)
    tag = f"click-{next(_answers)}"
    body = block_action_body(
        action_id,
        button["value"],
        user_id=user,
        channel_id=parent.response["channel"],
        message_ts=message_ts,
        action_ts=action_ts or f"{time.time():.6f}",
        response_url=standin.response_url(tag),
        trigger_id=trigger_id,
    )
    return body, tag


async def answered(standin: SlackStandIn, tag: str) -> str:
    """What the clicker was told through the click's response_url: ephemeral, the buttons'
    message left as it was."""
    (call,) = await standin.wait_for(f"response_url:{tag}", timeout=60)
    assert call.params["response_type"] == "ephemeral", call.params
    assert call.params["replace_original"] is False, call.params
    return str(call.params["text"])


async def submit(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    view: dict[str, Any],
    reason: str | None,
    user: str = "U0CORA",
) -> tuple[int, Any]:
    body = view_submission_body(view, {"reason": {"reason": reason}}, user_id=user)
    return await post_signed(http, f"{bot.url}/slack/events", body, SECRET)


async def test_buttons_take_the_same_path_as_commands(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(ONE_ROLLOUT, clock=clock)
    await SlackUser(http, bot, "U0CORA").say("start")
    await clock.advance(SOAK)
    status, tag = await click(http, bot, standin, "rollout_advance_next")
    assert status == 200
    await standin.wait_for("chat.update")
    assert (await api(http, bot, "/api/rollouts/phase-4"))["percent"] == 10
    assert "now progressing at 10 %" in await answered(standin, tag)
    texts = await thread_texts(standin, 2)
    assert texts[-1].startswith("<@U0CORA> advanced phase-4 5 % → 10 % (button)")
    assert not standin.calls_to("chat.postEphemeral")  # no channel membership needed

    # A stranger's click is refused like a stranger's command.
    view = await open_modal(http, bot, standin, "rollout_pause", user="U0STRANGER")
    status, _ = await submit(http, bot, view, "", user="U0STRANGER")
    assert status == 200
    assert "You may not pause phase-4" in await answered(standin, modal_answer_tag(view))

    # The Advance button asks first; the rollback's modal says what it does and holds at 0 %.
    latest = standin.calls_to("chat.update")[-1].params["blocks"]
    elements = {
        e["action_id"]: e for b in latest if b["type"] == "actions" for e in b["elements"]
    }
    assert elements["rollout_advance_next"]["confirm"]["text"]["text"] == (
        "Advance *phase-4* from 10 % to 25 % of traffic? The gates are checked first; "
        "the soak starts again at the new stage."
    )
    view = await open_modal(http, bot, standin, "rollout_rollback", user="U0FORGE")
    assert "Roll *phase-4* back from 10 % to 0 %?" in view["blocks"][0]["text"]["text"]
    status, reply = await submit(http, bot, view, "error budget burning", user="U0FORGE")
    assert (status, reply) == (200, "")  # the modal closes
    assert "rolled back to 0 %" in await answered(standin, modal_answer_tag(view))
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["percent"]) == ("rolled_back", 0)
    assert state["events"][-1]["source"] == "button"


async def open_modal(
    http: aiohttp.ClientSession,
    bot: RolloutBot,
    standin: SlackStandIn,
    action_id: str,
    user: str = "U0CORA",
) -> dict[str, Any]:
    """Click Pause or Roll back: the modal Slack opened for the click's trigger_id."""
    before = len(standin.calls_to("views.open"))
    trigger = new_trigger_id()
    status, _ = await click(http, bot, standin, action_id, user=user, trigger_id=trigger)
    assert status == 200
    opened = (await standin.wait_for("views.open", count=before + 1))[before]
    assert opened.params["trigger_id"] == trigger
    assert opened.response["ok"], opened.response
    view: dict[str, Any] = opened.response["view"]
    return view


def modal_answer_tag(view: dict[str, Any]) -> str:
    """The response_url tag of the click that opened this modal."""
    url = json.loads(view["private_metadata"])["u"]
    return str(url).rsplit("/", 1)[-1]


async def test_pause_and_roll_back_ask_why_and_the_audit_log_keeps_it(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    await SlackUser(http, bot, "U0CORA").say("start")

    # Pause: the reason is optional.
    view = await open_modal(http, bot, standin, "rollout_pause")
    (field,) = [b for b in view["blocks"] if b["type"] == "input"]
    assert field["optional"] is True and field["label"]["text"] == "Why pause it?"
    assert json.loads(view["private_metadata"])["v"] == 1  # the version the button was drawn at
    assert (await api(http, bot, "/api/rollouts/phase-4"))["state"] == "progressing"  # not yet
    status, reply = await submit(http, bot, view, "waiting for <!here> & the on-call")
    assert (status, reply) == (200, "")
    assert "now paused at 5 %" in await answered(standin, modal_answer_tag(view))
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["events"][-1]["reason"]) == (
        "paused", "waiting for <!here> & the on-call"
    )
    texts = await thread_texts(standin, 2)
    assert "Reason: waiting for &lt;!here&gt; &amp; the on-call" in texts[-1]  # pings no one

    # An empty pause reason is fine, and stays empty (no made-up text in the audit log).
    await SlackUser(http, bot, "U0CORA").say("resume")
    view = await open_modal(http, bot, standin, "rollout_pause")
    assert (await submit(http, bot, view, None)) == (200, "")
    await answered(standin, modal_answer_tag(view))
    events = (await api(http, bot, "/api/rollouts/phase-4"))["events"]
    assert (events[-1]["verb"], events[-1]["reason"]) == ("pause", "")

    # Roll back: the reason is required; a blank one is sent back under the field.
    await SlackUser(http, bot, "U0CORA").say("resume")
    view = await open_modal(http, bot, standin, "rollout_rollback")
    (field,) = [b for b in view["blocks"] if b["type"] == "input"]
    assert field["optional"] is False
    for blank in (None, "", "   \n  "):
        status, reply = await submit(http, bot, view, blank)
        assert status == 200
        assert reply == {
            "response_action": "errors",
            "errors": {"reason": "Say why: the reason goes in the audit log and the thread."},
        }
    status, reply = await submit(http, bot, view, "x" * 501)
    assert reply["response_action"] == "errors" and "under 501 characters" in str(reply)
    assert (await api(http, bot, "/api/rollouts/phase-4"))["state"] == "progressing"
    assert (await submit(http, bot, view, "error budget\nburning at 5 %")) == (200, "")
    assert "rolled back to 0 %" in await answered(standin, modal_answer_tag(view))
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["events"][-1]["reason"]) == (
        "rolled_back", "error budget burning at 5 %"
    )


async def test_a_modal_submitted_after_someone_moved_the_rollout_does_nothing(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(ONE_ROLLOUT, clock=clock)
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    view = await open_modal(http, bot, standin, "rollout_rollback", user="U0FORGE")
    await clock.advance(SOAK)
    assert "progressing at 10 %" in await cora.say("advance next")
    assert (await submit(http, bot, view, "too slow", user="U0FORGE")) == (200, "")
    told = await answered(standin, modal_answer_tag(view))
    assert "phase-4 moved while you were acting" in told and "Nothing was done" in told
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["percent"]) == ("progressing", 10)
    # Submitted twice (a double click on Submit), it acts once.
    view = await open_modal(http, bot, standin, "rollout_pause", user="U0FORGE")
    await asyncio.gather(
        submit(http, bot, view, "lunch", user="U0FORGE"),
        submit(http, bot, view, "lunch", user="U0FORGE"),
    )
    await standin.wait_for(f"response_url:{modal_answer_tag(view)}", count=2)
    events = (await api(http, bot, "/api/rollouts/phase-4"))["events"]
    assert [e["verb"] for e in events] == ["start", "advance", "pause"]


async def test_a_button_whose_trigger_slack_refuses_says_what_to_type(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    await SlackUser(http, bot, "U0CORA").say("start")
    await open_modal(http, bot, standin, "rollout_pause")
    used = standin.calls_to("views.open")[-1].params["trigger_id"]
    status, tag = await click(http, bot, standin, "rollout_pause", trigger_id=used)
    assert status == 200
    assert standin.calls_to("views.open")[-1].error == "exchanged_trigger_id"
    assert "Type `/rollout pause phase-4 -- waiting for on-call` instead." in (
        await answered(standin, tag)
    )


async def test_a_double_click_acts_once(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(ONE_ROLLOUT, clock=clock)
    await SlackUser(http, bot, "U0CORA").say("start")
    await standin.wait_for("chat.postMessage", count=2)
    await clock.advance(SOAK)
    # Two clicks on the same button, as drawn, before either is answered.
    bodies = [
        await click_body(bot, standin, "rollout_advance_next", action_ts=ts)
        for ts in ("1.000001", "1.000002")
    ]
    statuses = await asyncio.gather(
        *(post_signed(http, f"{bot.url}/slack/events", body, SECRET) for body, _ in bodies)
    )
    assert [status for status, _ in statuses] == [200, 200]
    texts = sorted([await answered(standin, tag) for _, tag in bodies])
    assert texts[0].startswith("Done: phase-4 is now progressing at 10 %")
    assert "moved while you were acting" in texts[1]
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["percent"], state["version"]) == (10, 2)


async def test_health_and_metrics(make_bot: BotFactory, http: aiohttp.ClientSession) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    health = await api(http, bot, "/healthz")
    assert (health["ok"], health["database"]) == (True, "ok")
    assert health["replica"]["id"] == f"{socket.gethostname()}-{os.getpid()}"
    assert set(health["replica"]) == {"id", "timers", "outbox"}
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    await cora.say("advance 150")
    async with http.get(f"{bot.url}/metrics") as response:
        text = await response.text()
    assert 'rollout_bot_commands_total{outcome="ok",verb="start"} 1.0' in text
    assert 'rollout_bot_commands_total{outcome="refused",verb="advance"} 1.0' in text
    assert "rollout_bot_outbox_depth" in text
    async with http.get(f"{bot.url}/api/rollouts/nope") as response:
        assert response.status == 404
        assert "no rollout named 'nope'; known: phase-4" in (await response.json())["error"]


async def test_a_slow_database_still_answers_within_three_seconds(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    blocker = await hold_write_lock(sqlite_url)  # another writer holds the lock for 3.5 s
    release = asyncio.get_running_loop().call_later(3.5, blocker.execute, "COMMIT")
    try:
        body = slash_body("start phase-4", response_url=standin.response_url("late"))
        started = time.monotonic()
        status, reply = await post_signed(http, f"{bot.url}/slack/events", body, SECRET)
        assert time.monotonic() - started < 3.0
        assert (status, reply["text"]) == (200, "Working on it… the answer follows here.")
        late = await standin.wait_for("response_url:late", timeout=60)
        assert "phase-4 is now progressing at 5 %" in late[0].params["text"]
        assert late[0].params["response_type"] == "ephemeral"
    finally:
        release.cancel()
        blocker.close()


# ---------------------------------------------------------------- names as people type them


async def snapshot(http: aiohttp.ClientSession, bot: RolloutBot) -> dict[str, tuple[Any, ...]]:
    rollouts = await api(http, bot, "/api/rollouts")
    return {r["name"]: (r["state"], r["percent"], r["version"]) for r in rollouts}


# (what to type before, so that the verb would act if it took the word for a reason or left
# the name out, the command with a word that is no rollout's name, what the reply says)
NOT_A_NAME = [
    ([], "status phse-4", "did you mean `phase-4`?"),
    ([], "status рhase-5", "did you mean `phase-4`?"),  # Cyrillic р: phase-5 is no rollout
    ([], "start serch-v2", "did you mean `search-v2`?"),
    ([], "start ѕearch-v3", "did you mean `search-v2`?"),  # Cyrillic ѕ
    ([], "advance next phse-4", "did you mean `phase-4`?"),
    ([], "advance phse-4 50", "did you mean `phase-4`?"),
    ([], "advance 50 nosuch", "`nosuch` is not a rollout."),
    ([], "advance 50 рhase-4x force canary noise", "did you mean `phase-4`?"),
    ([], "pause phse-4", "did you mean `phase-4`?"),
    ([], "pause phse-4 waiting for the on-call", "did you mean `phase-4`?"),
    ([], "pause nosuch", "`nosuch` is not a rollout."),
    ([], "pause waiting for the on-call", "`waiting` is not a rollout."),
    (["pause phase-4"], "resume phse-4", "did you mean `phase-4`?"),
    (["pause phase-4"], "resume рhase-5", "did you mean `phase-4`?"),
    ([], "rollback phse-4", "did you mean `phase-4`?"),
    ([], "rollback nosuch", "`nosuch` is not a rollout."),
    ([], "rollback to 10 phse-4", "did you mean `phase-4`?"),
    ([], "rollback to 10 error budget burning", "`error` is not a rollout."),
    ([], "rollback phase\u200b-5 to 10", "did you mean `phase-4`?"),
    ([], "history phse-4", "did you mean `phase-4`?"),
    ([], "history nosuch", "`nosuch` is not a rollout."),
]


@pytest.mark.parametrize(
    ("before", "text", "says"), NOT_A_NAME, ids=[c[1][:28] for c in NOT_A_NAME]
)
async def test_a_word_that_is_no_rollout_name_is_refused_and_moves_nothing(
    make_bot: BotFactory,
    standin: SlackStandIn,
    http: aiohttp.ClientSession,
    before: list[str],
    text: str,
    says: str,
) -> None:
    bot = await make_bot()  # phase-4 and search-v2
    cora = SlackUser(http, bot, "U0CORA")  # a lead: may do everything, force included
    for typed in ["start phase-4", "advance 25 force setting the scene", *before]:
        assert (await cora.say(typed)).startswith("Done:"), typed
    await thread_texts(standin, 2 + len(before))
    was = await snapshot(http, bot)
    posted = len(standin.calls_to("chat.postMessage"))

    reply = await cora.say(text)
    assert "is not a rollout" in reply and says in reply
    assert "Known rollouts: `phase-4`, `search-v2`." in reply
    assert f"Usage: `/rollout {text.split()[0]} " in reply
    await settle(bot)  # nothing queued that could still reach Slack
    assert await snapshot(http, bot) == was
    assert len(standin.calls_to("chat.postMessage")) == posted  # nothing said in the thread


async def test_a_name_typed_as_people_type_it_is_that_rollout(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(clock=clock)  # phase-4 and search-v2: with both active, each is named
    cora = SlackUser(http, bot, "U0CORA")
    assert "Done: phase-4 is now progressing at 5 %" in await cora.say("start PHASE-4")
    assert "Done: search-v2 is now progressing" in await cora.say("start ѕearch-v2")  # Cyrillic
    await clock.advance(SOAK)
    assert "Done: phase-4 is now progressing at 10 %" in await cora.say("advance next рhase-4")
    assert "Done: phase-4 is now paused at 10 %" in await cora.say("pause phase\u200b-4 lunch")
    assert "Done: phase-4 is now progressing" in await cora.say("resume `PHASE-4`")
    assert "Done: search-v2 is now progressing at 25 %" in await cora.say(
        "advance 25 ｓｅａｒｃｈ－ｖ２"  # full width
    )
    assert "Done: search-v2 is now paused at 10 %" in await cora.say(
        "rollback to 10 search‑v2 -- p95 high"  # a non-breaking hyphen
    )
    status = await cora.say('status "search-v2",')
    assert "*search-v2* (search_v2) · paused at 10 %" in status and "phase-4" not in status
    assert "*phase-4* — last 4 changes:" in await cora.say("history phase–4")  # en dash

    assert await snapshot(http, bot) == {
        "phase-4": ("progressing", 10, 4),
        "search-v2": ("paused", 10, 3),
    }
    texts = await thread_texts(standin, 7)
    assert "<@U0CORA> paused phase-4 at 10 %\nReason: lunch" in texts
    assert (
        "<@U0CORA> rolled back search-v2 25 % → 10 %\nReason: p95 high\n"
        "Held at 10 % until someone types `/rollout resume search-v2`."
    ) in texts


async def test_a_reason_without_a_name_goes_after_two_dashes(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot()  # phase-4 active, search-v2 configured
    forge = SlackUser(http, bot, "U0FORGE")
    await SlackUser(http, bot, "U0CORA").say("start phase-4")
    await thread_texts(standin, 1)

    reply = await forge.say("pause some words")
    assert reply.startswith("`some` is not a rollout.\nKnown rollouts: `phase-4`, `search-v2`.")
    assert "A reason without a name goes after `--`: `/rollout pause -- waiting for on-call`" in (
        reply
    )
    assert (await api(http, bot, "/api/rollouts/phase-4"))["version"] == 1

    assert "Done: phase-4 is now paused at 5 %" in await forge.say("pause -- some reason")
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["state"], state["hold_reason"]) == ("paused", "some reason")
    assert (await thread_texts(standin, 2))[-1] == (
        "<@U0FORGE> paused phase-4 at 5 %\nReason: some reason"
    )


PINGS = "<!channel> <!here> <!subteam^S123> <@U0BAD> <https://evil.example|click> R&D"
INERT = (
    "&lt;!channel&gt; &lt;!here&gt; &lt;!subteam^S123&gt; &lt;@U0BAD&gt; "
    "&lt;https://evil.example|click&gt; R&amp;D"
)
MARKUP = ("<!channel>", "<!here>", "<!subteam", "<@U0BAD>", "<https://evil")


def assert_no_markup(sent: str) -> None:
    assert [m for m in MARKUP if m in sent] == [], sent


async def test_a_reason_that_would_ping_reaches_the_channel_as_text(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    bot = await make_bot(ONE_ROLLOUT)
    cora = SlackUser(http, bot, "U0CORA")
    forge = SlackUser(http, bot, "U0FORGE")
    await cora.say("start")
    assert "Done:" in await cora.say("advance 25 force straight to the quarter")
    # Typed into Slack as it stands; Slack sends it escaped, the bot keeps what was typed.
    assert "Done: phase-4 is now paused" in await forge.say(f"pause -- {PINGS}")
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert state["hold_reason"] == PINGS
    assert state["events"][-1]["reason"] == PINGS

    refusal = await cora.say("advance next")  # the refusal quotes the hold reason
    assert f"phase-4 is paused at 25 % ({INERT})." in refusal
    assert_no_markup(refusal)

    await cora.say("resume")
    assert "Done: phase-4 is now paused at 10 %" in await forge.say(f"rollback to 10 -- {PINGS}")

    replies = await standin.wait_for("chat.postMessage", lambda c: "thread_ts" in c.params, count=5)
    paused, rolled_back = replies[2], replies[4]
    for reply in (paused, rolled_back):
        assert f"Reason: {INERT}" in reply.params["text"]
        assert f"Reason: {INERT}" in dump(reply.params["blocks"])
        assert_no_markup(reply.params["text"] + dump(reply.params["blocks"]))
        assert reply.params["text"].startswith("<@U0FORGE> ")  # the bot's own mention stays
    assert rolled_back.params["reply_broadcast"] in (True, "true", "1")  # shown in the channel

    updates = await standin.wait_for("chat.update", count=4)
    parent = dump(updates[-1].params["blocks"])
    assert f"Held: rolled back from 25 %: {INERT}" in parent
    assert_no_markup(parent)

    history = await cora.say("history")
    assert history.count(f"— {INERT}") == 2
    assert_no_markup(history)
    assert "<@U0FORGE> rolled back" in history


async def test_an_advance_waits_for_the_soak_and_a_stage_at_a_time_unless_forced(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(ONE_ROLLOUT, clock=clock)
    cora = SlackUser(http, bot, "U0CORA")  # a lead
    forge = SlackUser(http, bot, "U0FORGE")  # an operator
    assert "now progressing at 5 %" in await cora.say("start phase-4")
    await thread_texts(standin, 1)

    async def shown(text: str) -> str:
        """The reply as Slack shows it (`&lt;` reads `<`)."""
        return (await cora.say(text)).replace("&lt;", "<").replace("&gt;", ">")

    await clock.advance(timedelta(hours=2, minutes=10))
    assert await shown("advance next") == (
        "phase-4 has soaked 2h 10m of its 1d at 5 %: 21h 50m left.\n"
        "Wait, or type `/rollout advance next phase-4 force <reason>`."
    )
    assert await shown("advance 60 phase-4") == (
        "phase-4 has soaked 2h 10m of its 1d at 5 %: 21h 50m left. "
        "The plan's next stage is 10 %: 60 % would skip 10, 25 and 50 %.\n"
        "Type `/rollout advance next phase-4` for 10 % once it has soaked, or "
        "`/rollout advance 60 phase-4 force <reason>`."
    )
    assert "You may not force an advance" in await forge.say("advance next phase-4 force hurry")
    state = await api(http, bot, "/api/rollouts/phase-4")
    assert (state["percent"], state["version"]) == (5, 1)

    await clock.advance(timedelta(hours=21, minutes=50))  # the day's soak is over
    assert "Done: phase-4 is now progressing at 10 %" in await cora.say("advance next")
    assert "60 % would skip 25 and 50 %" in await cora.say("advance 60")
    reply = await cora.say("advance 60 phase-4 force incident 42 needs the capacity")
    assert "Done: phase-4 is now progressing at 60 %" in reply

    texts = await thread_texts(standin, 3)
    assert texts[1] == "<@U0CORA> advanced phase-4 5 % → 10 %\nSoak at this stage: 1d."
    assert texts[2] == (
        "<@U0CORA> advanced phase-4 10 % → 60 %\n⚠️ Forced: incident 42 needs the capacity\n"
        "Soak at this stage: 1d."
    )
    events = (await api(http, bot, "/api/rollouts/phase-4"))["events"]
    assert [(e["to_percent"], e["forced"]) for e in events] == [(5, False), (10, False), (60, True)]
