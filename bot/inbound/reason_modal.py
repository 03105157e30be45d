"""The reason asked by the thread's Pause and Roll back buttons, in a modal.

A click on either button opens a modal (`views.open` with the click's `trigger_id`) asking
why: optional for a pause (it is undone by a resume), required for a rollback (it moves
traffic back and holds the rollout; whoever starts it again needs to know why). The modal
is the rollback's confirmation too: it says what will happen, and Cancel does nothing.

On submission (`view_submission`) the command runs as if typed, with the reason as its
audit reason and the version the button was drawn at, carried in `private_metadata` with
the click's `response_url`: someone who moved the rollout meanwhile wins, and the person is
told through that `response_url`. A reason that is blank or too long gets Slack's
`response_action: errors`, and the modal stays open to fix it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound.answers import answer_click
from bot.metrics import Metrics
from bot.render import buttons as actions
from bot.render.blocks import Block, escape
from bot.render.seal import ButtonSeal
from bot.services.rollouts import Actor, RolloutService
from commands.handle import Handler

log = logging.getLogger(__name__)

CALLBACK_ID = "rollout_reason"
BLOCK_ID = "reason"
ACTION_ID = "reason"
REASON_LIMIT = 500
VERBS = {actions.PAUSE: "pause", actions.ROLLBACK: "rollback"}  # the buttons that ask why


@dataclass(frozen=True)
class ReasonRequest:
    """What the modal carries back in `private_metadata`: which command on which rollout,
    the version the button was drawn at, and where to answer."""

    verb: str
    rollout: str
    version: int
    response_url: str = ""

    def encode(self) -> str:
        return json.dumps(
            {"a": self.verb, "r": self.rollout, "v": self.version, "u": self.response_url},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, raw: str) -> ReasonRequest:
        """Raises ValueError on anything a modal of ours could not have carried."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not a reason modal's metadata: {raw[:80]!r}") from exc
        if not isinstance(data, dict) or set(data) != {"a", "r", "v", "u"}:
            raise ValueError(f"not a reason modal's metadata: {raw[:80]!r}")
        value = actions.ButtonValue.decode(json.dumps({"r": data["r"], "v": data["v"]}))
        verb, url = data["a"], data["u"]
        if verb not in VERBS.values() or not isinstance(url, str):
            raise ValueError(f"not a reason modal's metadata: {raw[:80]!r}")
        return cls(verb, value.rollout, value.version, url)


def required(verb: str) -> bool:
    return verb == "rollback"


def reason_view(request: ReasonRequest, percent: int | None) -> dict[str, Any]:
    """The modal for one click."""
    name = escape(request.rollout)
    at = f" at {percent} %" if percent is not None else ""
    if request.verb == "rollback":
        title, submit = "Roll back the rollout", "Roll back"
        what = (
            f"Roll *{name}* back{' from ' + str(percent) + ' %' if percent else ''} to 0 %? "
            "It stays held there until someone starts it again."
        )
        label, hint = "Why roll it back?", "Required. Kept in the audit log and said in the thread."
        placeholder = "e.g. error budget burning since the 25 % stage"
    else:
        title, submit = "Pause the rollout", "Pause"
        what = f"Pause *{name}*{at}? It stays there until someone resumes it."
        label, hint = "Why pause it?", "Optional. Kept in the audit log and said in the thread."
        placeholder = "e.g. waiting for on-call"
    element: Block = {
        "type": "plain_text_input",
        "action_id": ACTION_ID,
        "multiline": True,
        "max_length": REASON_LIMIT,
        "placeholder": {"type": "plain_text", "text": placeholder},
    }
    if required(request.verb):
        element["min_length"] = 1
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": request.encode(),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": what}},
            {
                "type": "input",
                "block_id": BLOCK_ID,
                "optional": not required(request.verb),
                "label": {"type": "plain_text", "text": label},
                "hint": {"type": "plain_text", "text": hint},
                "element": element,
            },
        ],
    }


def submitted_reason(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    entered = (values.get(BLOCK_ID) or {}).get(ACTION_ID) or {}
    return str(entered.get("value") or "").strip()


def reason_problem(verb: str, reason: str) -> str | None:
    """What is wrong with a submitted reason, said under the field; None when it will do."""
    if required(verb) and not reason:
        return "Say why: the reason goes in the audit log and the thread."
    if len(reason) > REASON_LIMIT:
        return f"Keep it under {REASON_LIMIT + 1} characters (this one has {len(reason)})."
    return None


def command_text(request: ReasonRequest, reason: str) -> str:
    """The command as Slack would send it typed: the reason after `--`, escaped like a
    slash command's text (the parser reads that form), on one line."""
    text = f"{request.verb} {request.rollout}"
    if reason:
        typed = " ".join(reason.split())
        text += " -- " + typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


async def open_reason_modal(
    client: AsyncWebClient,
    service: RolloutService,
    body: dict[str, Any],
    verb: str,
    value: actions.ButtonValue,
) -> None:
    """Open the modal for a click; if Slack will not (the trigger expired), say what to type."""
    user = str(body.get("user", {}).get("id", ""))
    request = ReasonRequest(verb, value.rollout, value.version, str(body.get("response_url") or ""))
    status = (await service.statuses()).get(value.rollout)
    view = reason_view(request, status.percent if status is not None else None)
    try:
        await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)
    except SlackApiError as exc:
        log.warning("views.open for a %s reason failed: %s", verb, exc.response.get("error"))
        example = "-- waiting for on-call" if verb == "pause" else "-- error budget burning"
        await answer_click(
            service,
            body,
            user,
            f"Slack did not open the form for a reason. Type `/rollout {verb} "
            f"{value.rollout} {example}` instead.",
        )


def _opened(seal: ButtonSeal, metadata: str) -> ReasonRequest | None:
    """What a modal this bot opened carries back; None for any other metadata."""
    raw = seal.open(metadata)
    if raw is None:
        return None
    try:
        return ReasonRequest.decode(raw)
    except ValueError:
        return None


def register_reason_modal(
    app: AsyncApp, handler: Handler, service: RolloutService, metrics: Metrics, seal: ButtonSeal
) -> None:
    @app.view(CALLBACK_ID)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body.get("user", {}).get("id", ""))
        request = _opened(seal, str(view.get("private_metadata", "")))
        if request is None or request.rollout not in service.specs:
            log.warning("ignoring a view submission this bot did not open: %r", view.get("id"))
            await ack()  # the modal closes; nothing was done
            return
        reason = submitted_reason(view)
        problem = reason_problem(request.verb, reason)
        if problem is not None:
            await ack(response_action="errors", errors={BLOCK_ID: problem})
            return
        await ack()  # the modal closes; the answer follows through the click's response_url
        reply = await handler.handle(
            command_text(request, reason),
            Actor(user, "button"),
            dedup_key=f"view:{view.get('id', '')}",
            expected_version=request.version,
        )
        metrics.commands.labels(reply.verb, "ok" if reply.ok else "refused").inc()
        await answer_click(service, {"response_url": request.response_url}, user, reply.text)
