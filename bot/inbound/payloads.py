"""The shape of what Slack sends, checked before Bolt or a listener reads any of it.

Slack's payloads are checked only in the parts the bot reads (pydantic models that ignore
the rest): who clicked or typed, where, which action with which value, which modal with what
typed into it, which event. Anything else the signed body carries is left to Bolt. A payload
of the wrong shape (a user given as a string, `actions: []`, an id too long for any Slack
id, a value longer than Slack allows) is refused with the reason, as a 400 over HTTP or an
empty acknowledgement in Socket Mode, and never reaches a listener, so it can neither fail
with a traceback nor act.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.render.seal import ButtonSeal

Value = TypeVar("Value")

SlackId = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,39}$")]  # U0CORA, C0DEPLOY, T0…
Short = Annotated[str, Field(max_length=255)]
Stamp = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,12})?$")]  # 1700000000.000100
Url = Annotated[str, Field(pattern=r"^https?://[^\s<>|]{1,2000}$")]
VALUE_LIMIT = 2000  # a button's value (Block Kit)
METADATA_LIMIT = 3000  # a view's private_metadata
TEXT_LIMIT = 4000  # what a person types


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Someone(_Part):
    id: SlackId


class Container(_Part):
    type: Short = ""
    message_ts: Stamp | None = None
    channel_id: SlackId | None = None


class Action(_Part):
    action_id: Short
    block_id: Short = ""
    type: Short = ""
    value: Annotated[str, Field(max_length=VALUE_LIMIT)] = ""
    action_ts: Stamp | None = None


class BlockActions(_Part):
    type: Literal["block_actions"]
    user: Someone
    channel: Someone | None = None
    container: Container | None = None
    actions: list[Action] = Field(min_length=1, max_length=25)
    response_url: Url | None = None
    trigger_id: Short = ""


class Typed(_Part):
    value: Annotated[str, Field(max_length=TEXT_LIMIT)] | None = None


class ViewState(_Part):
    values: dict[Short, dict[Short, Typed]] = {}


class View(_Part):
    id: Short = ""
    callback_id: Short = ""
    private_metadata: Annotated[str, Field(max_length=METADATA_LIMIT)] = ""
    state: ViewState = ViewState()


class ViewSubmission(_Part):
    type: Literal["view_submission", "view_closed"]
    user: Someone
    view: View


class Event(_Part):
    type: Short
    user: SlackId | None = None
    tab: Short = ""


class EventCallback(_Part):
    type: Literal["event_callback"]
    event_id: Short = ""
    event: dict[str, Any]  # read only for the events the bot listens to (LISTENED_EVENTS)


LISTENED_EVENTS: dict[str, type[_Part]] = {"app_home_opened": Event}


class SlashCommand(_Part):
    command: Annotated[str, Field(pattern=r"^/[a-z0-9_-]{1,31}$")]
    text: Annotated[str, Field(max_length=TEXT_LIMIT)] = ""
    user_id: SlackId
    channel_id: SlackId
    trigger_id: Short = ""
    response_url: Url | None = None


_BY_TYPE: dict[str, type[_Part]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
    "view_closed": ViewSubmission,
    "event_callback": EventCallback,
}


def payload_problem(data: Any) -> str | None:
    """Why `data` (a parsed Slack request body) is not a payload the bot can read, in a
    sentence; None when its parts the bot reads have the shape Slack gives them."""
    if not isinstance(data, dict):
        return "the payload must be a JSON object"
    if "command" in data:
        model: type[_Part] | None = SlashCommand
    else:
        kind = data.get("type")
        if not isinstance(kind, str):
            return "neither a slash command nor an interaction payload"
        model = _BY_TYPE.get(kind)  # other kinds: the bot has no listener; Bolt says so
    if model is None:
        return None
    try:
        model.model_validate(data)
        if model is EventCallback and data["event"].get("type") in LISTENED_EVENTS:
            LISTENED_EVENTS[data["event"]["type"]].model_validate(data["event"])
    except ValidationError as exc:
        return _words(exc)
    return None


def _words(exc: ValidationError) -> str:
    """The first few problems, each as `where: what` (never the values sent)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "malformed payload: " + "; ".join(parts) + more


def opened_value(
    seal: ButtonSeal, action: dict[str, Any], decode: Callable[[str], Value]
) -> Value | None:
    """The value a button of ours carries, or None when this bot did not draw it: not
    sealed by this bot, or not exactly what the bot writes."""
    raw = seal.open(str(action.get("value", "")))
    if raw is None:
        return None
    try:
        return decode(raw)
    except ValueError:
        return None
