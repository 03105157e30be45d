"""Bolt listeners: ack fast, turn the payload into a command, hand it to the handler.

Slash commands and buttons go through the same `Handler.handle`; buttons carry the
version of the rollout they were drawn at, so a double click acts once. A button acts only
on what it was drawn for: its value must open with the bot's seal (`bot.render.seal`), parse
strictly, and name a configured rollout exactly; otherwise nothing changes and the person
who clicked is told why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.rollout import Cancel, Confirm
from bot.inbound import reason_modal
from bot.inbound.answers import answer_click
from bot.inbound.app_home_listener import AppHome
from bot.inbound.payloads import opened_value
from bot.metrics import Metrics
from bot.render import buttons as actions
from bot.render.blocks import unknown_rollout_click_text, unsealed_click_text
from bot.render.seal import ButtonSeal
from bot.services.rehearsals import Reach
from bot.services.rollouts import Actor, RolloutService
from commands.handle import Handler, Reply

log = logging.getLogger(__name__)

ACK_BUDGET_SECONDS = 2.5  # Slack waits 3 s for the ack
COMMAND = re.compile(r"^/rollout")  # the slash commands the bot answers
_ENCODED_KEPT = 512
_BUTTON_TEXT = {  # Pause and Roll back ask for the reason first (`bot.inbound.reason_modal`)
    actions.ADVANCE: "advance next {name}",
    actions.RESUME: "resume {name}",
}


def build_app(
    *,
    token: str,
    signing_secret: str,
    client: AsyncWebClient,
    handler: Handler,
    service: RolloutService,
    metrics: Metrics,
    seal: ButtonSeal,
    slack: AsyncWebClient,
    home: AppHome | None = None,
) -> AsyncApp:
    """`slack`: the bot's own client, which seals what it sends (`bot.sealed_client`); the
    listeners use it rather than the plain one Bolt makes for each request."""

    async def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        # One workspace, one bot token: no auth.test round trip, so commands still answer
        # while Slack's Web API is slow or down (their messages wait in the outbox).
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = AsyncApp(
        signing_secret=signing_secret,
        client=client,
        authorize=authorize,
        # Listeners ack within the budget themselves; running them inline spares Bolt's
        # 10 ms polling for the ack.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )

    @app.command(COMMAND)
    async def on_command(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, request: AsyncBoltRequest
    ) -> None:
        source = "socket" if request.mode == "socket_mode" else "slash"
        await ack(**await command_answer(handler, service, metrics, body, source, respond))

    @app.action(re.compile("^(" + "|".join(actions.ALL) + ")$"))
    async def on_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user, key = _click(body, action, service.channel)
        value = opened_value(seal, action, actions.ButtonValue.decode)
        if value is None or value.rollout not in service.specs:
            await _refuse_click(service, body, user, action, value)
            return
        if action["action_id"] in reason_modal.VERBS:  # Pause, Roll back: ask why first
            verb = reason_modal.VERBS[action["action_id"]]
            await reason_modal.open_reason_modal(slack, service, body, verb, value)
            return
        text = _BUTTON_TEXT[action["action_id"]].format(name=value.rollout)
        reply = await handler.handle(
            text, Actor(user, "button"), dedup_key=key, expected_version=value.version
        )
        _count(metrics, reply)
        await answer_click(service, body, user, reply.text)

    reason_modal.register_reason_modal(app, handler, service, metrics, seal)

    @app.action(actions.OPEN_THREAD)
    async def on_open_thread(ack: AsyncAck) -> None:
        await ack()  # a link: Slack opens the thread itself, and still tells the app

    @app.action(re.compile("^(" + "|".join(actions.REQUEST_ALL) + ")$"))
    async def on_request_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """Confirm or Cancel on a step that needs a second person."""
        await ack()
        user, key = _click(body, action, service.channel)
        value = opened_value(seal, action, actions.RequestValue.decode)
        if value is None or value.rollout not in service.specs:
            await _refuse_click(service, body, user, action, value)
            return
        command = (
            Confirm(value.request) if action["action_id"] == actions.CONFIRM
            else Cancel(value.request)
        )
        reply = await handler.answer_request(
            value.rollout, command, Actor(user, "button"), dedup_key=key
        )
        _count(metrics, reply)
        await answer_click(service, body, user, reply.text)

    if home is not None:

        @app.event("app_home_opened")
        async def on_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
            await home.opened(body, event, slack)

    return app


async def command_answer(
    handler: Handler,
    service: RolloutService,
    metrics: Metrics,
    body: Mapping[str, Any],
    source: str,
    respond: AsyncRespond,
) -> dict[str, Any]:
    """What a `/rollout` command is acknowledged with (`ack`'s arguments): its answer, or,
    when that takes longer than Slack waits, a note that it follows through `respond`."""
    actor = Actor(str(body.get("user_id", "")), source)
    key = f"slash:{body['trigger_id']}" if body.get("trigger_id") else None
    reach = Reach(
        actor.user,
        str(body.get("channel_id") or service.channel),
        str(body.get("response_url") or ""),
    )
    work = asyncio.ensure_future(
        handler.handle(str(body.get("text", "")), actor, dedup_key=key, reach=reach)
    )
    try:
        reply = await asyncio.wait_for(asyncio.shield(work), ACK_BUDGET_SECONDS)
    except TimeoutError:
        late = asyncio.create_task(_answer_late(work, respond, metrics))
        _late_answers.add(late)
        late.add_done_callback(_late_answers.discard)
        return {"response_type": "ephemeral", "text": "Working on it… the answer follows here."}
    _count(metrics, reply)
    return {"response_type": "ephemeral", "text": reply.text, "blocks": reply.blocks or None}


def at_once_answers(
    handler: Handler, service: RolloutService, metrics: Metrics
) -> Callable[[Mapping[str, str]], Awaitable[bytes | None]]:
    """Answers, over HTTP and without Bolt, to the signed and well-formed slash commands
    that only read (`Handler.reads_only`): the JSON body Bolt's `ack` would send for them,
    from memory when the handler can (`Handler.answer_from_memory`), else from the same
    `command_answer` as the listener. None for anything else, which goes to Bolt."""
    encoded: dict[int, tuple[Reply, bytes]] = {}  # the handler's kept replies, as sent

    def body_of(reply: Reply) -> bytes:
        kept = encoded.get(id(reply))
        if kept is not None and kept[0] is reply:
            return kept[1]
        body = json.dumps(ack_body("ephemeral", reply.text, reply.blocks or None)).encode()
        if len(encoded) >= _ENCODED_KEPT:
            encoded.clear()
        encoded[id(reply)] = (reply, body)  # kept with its reply: the id stays its own
        return body

    async def answer(form: Mapping[str, str]) -> bytes | None:
        if not COMMAND.search(str(form.get("command", ""))):
            return None
        text = str(form.get("text", ""))
        reply = handler.answer_from_memory(text)
        if reply is not None:
            _count(metrics, reply)
            return body_of(reply)
        if not handler.reads_only(text):
            return None
        respond = AsyncRespond(response_url=form.get("response_url"))
        said = await command_answer(handler, service, metrics, form, "slash", respond)
        return json.dumps(ack_body(**said)).encode()

    return answer


def ack_body(
    response_type: str, text: str, blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON body of Bolt's `ack(response_type=…, text=…, blocks=…)`, key for key."""
    body: dict[str, Any] = {"text": text, "response_type": response_type}
    if blocks:
        body["blocks"] = blocks
    return body


async def _refuse_click(
    service: RolloutService,
    body: dict[str, Any],
    user: str,
    action: dict[str, Any],
    value: actions.ButtonValue | actions.RequestValue | None,
) -> None:
    """Nothing is done; the person who clicked is told why."""
    log.warning(
        "refused a %s click by %s: %s",
        action.get("action_id"),
        user,
        "a value this bot did not draw" if value is None else "no such rollout",
    )
    text = unsealed_click_text() if value is None else unknown_rollout_click_text(value.rollout)
    await answer_click(service, body, user, text)


def _click(body: dict[str, Any], action: dict[str, Any], channel: str) -> tuple[str, str]:
    """Who clicked, and the click's identity: Slack retries and double clicks act once."""
    user = str(body.get("user", {}).get("id", ""))
    channel = str(body.get("channel", {}).get("id") or channel)
    message_ts = body.get("container", {}).get("message_ts", "")
    return user, f"button:{channel}:{message_ts}:{action.get('action_ts', '')}"


_late_answers: set[asyncio.Task[None]] = set()


async def _answer_late(
    work: asyncio.Future[Reply], respond: AsyncRespond, metrics: Metrics
) -> None:
    """A command that outlived Slack's 3 s: its answer goes to the response_url."""
    reply = await work
    _count(metrics, reply)
    await respond(response_type="ephemeral", text=reply.text, replace_original=False)


def _count(metrics: Metrics, reply: Reply) -> None:
    metrics.commands.labels(reply.verb, "ok" if reply.ok else "refused").inc()
