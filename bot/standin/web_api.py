"""A local stand-in for Slack: the Web API, file uploads, response_url and Socket Mode.

It speaks Slack's real HTTP protocol, so the real ``slack_sdk`` / Bolt clients can be pointed at
it with ``AsyncWebClient(base_url=standin.api_url)``. Every call is recorded for assertions, and
failures (429, 5xx, ``ok: false``, slowness, an outage) can be injected.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import itertools
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web

from bot.standin.faults import Outcome, SlackFaults
from bot.standin.scopes import METHOD_SCOPES

JsonDict = dict[str, Any]
MethodHandler = Callable[[JsonDict, str], JsonDict]
CallPredicate = Callable[["Call"], bool]

TEAM_ID = "T0TEST"
TEAM_NAME = "Rollout Test"
TEAM_DOMAIN = "rollout-test"
APP_ID = "A0TEST"
BOT_ID = "B0BOT"
BOT_USER_ID = "U0BOT"
BOT_NAME = "rollout-bot"
INSTALLER_USER_ID = "U0ADMIN"
DEFAULT_TZ = "Europe/Paris"

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
BUTTON_VALUE_LIMIT = 2000
MESSAGE_TEXT_LIMIT = 40_000
ALT_TXT_LIMIT = 1000  # files.getUploadURLExternal: "alt_txt_too_large" beyond it

# Arguments that Slack accepts as JSON-encoded strings inside form bodies.
JSON_STRING_FIELDS = frozenset(
    {"blocks", "attachments", "view", "files", "metadata", "unfurls", "user_auth_blocks"}
)
_ID_RE = re.compile(r"^[CGDUW][A-Z0-9]{2,}$")
_TZ_LABELS = {"CET": "Central European Time", "CEST": "Central European Summer Time"}


@dataclass(frozen=True)
class Call:
    """One request received by the stand-in."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    received_at: float
    failed: bool = False
    status: int = 200
    error: str | None = None
    response: JsonDict = field(default_factory=dict)  # what the stand-in answered
    answer_lost: bool = False  # carried out, but the connection dropped before the answer

    def describe(self) -> str:
        """A one-line summary, for failure messages."""
        outcome = "ok" if not self.failed else f"FAILED {self.status} {self.error or ''}".strip()
        if self.answer_lost:
            outcome += " (answer lost)"
        params = json.dumps(self.params, default=str)
        if len(params) > 120:
            params = params[:117] + "..."
        return f"{self.method} [{outcome}] {params}"


@dataclass
class _Reply:
    body: JsonDict | str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None  # the error a plain-text answer names (response_url: "no_text")

    @property
    def error(self) -> str | None:
        if isinstance(self.body, dict) and self.body.get("ok") is False:
            return str(self.body.get("error"))
        if self.code is not None:
            return self.code
        return None if self.status == 200 else HTTPStatus(self.status).phrase

    @property
    def failed(self) -> bool:
        return self.status != 200 or self.error is not None

    def to_response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(text=self.body, status=self.status, headers=self.headers)
        return web.json_response(self.body, status=self.status, headers=self.headers)


@dataclass
class _Failure:
    status: int
    retry_after: int
    error: str | None
    remaining: int
    channel: str | None = None  # only calls to this channel, when set

    def matches(self, params: Mapping[str, Any]) -> bool:
        return self.channel is None or str(params.get("channel", "")) == self.channel

    def reply(self) -> _Reply:
        if self.error is not None:
            return _Reply({"ok": False, "error": self.error})
        if self.status == 429:
            headers = {"Retry-After": str(self.retry_after)}
            return _Reply({"ok": False, "error": "ratelimited"}, 429, headers)
        return _Reply(f"{self.status} {HTTPStatus(self.status).phrase}", self.status)


@dataclass
class _ResponseUrl:
    """A response_url handed out in a payload: Slack takes at most five posts to one, within
    thirty minutes of the interaction."""

    issued_at: float
    uses: int = 0


RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60
RESPONSE_TYPES = frozenset({"ephemeral", "in_channel"})


@dataclass
class _Channel:
    id: str
    name: str
    user: str | None = None
    is_member: bool = False
    is_open: bool = False
    messages: list[JsonDict] = field(default_factory=list)

    @property
    def is_im(self) -> bool:
        return self.id.startswith("D")

    def info(self) -> JsonDict:
        if self.is_im:
            return {
                "id": self.id,
                "created": 1700000000,
                "is_im": True,
                "is_org_shared": False,
                "user": self.user,
                "is_user_deleted": False,
                "priority": 0,
            }
        private = self.id.startswith("G")
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not private,
            "is_group": private,
            "is_im": False,
            "is_mpim": False,
            "is_private": private,
            "created": 1700000000,
            "is_archived": False,
            "is_general": self.name == "general",
            "is_member": self.is_member,
            "is_shared": False,
            "is_org_shared": False,
            "creator": INSTALLER_USER_ID,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def find(self, ts: str) -> JsonDict | None:
        return next((m for m in self.messages if m["ts"] == ts), None)


def _error(error: str, *messages: str) -> JsonDict:
    body: JsonDict = {"ok": False, "error": error}
    if messages:
        body["response_metadata"] = {"messages": list(messages)}
    return body


def _stable_suffix(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:10].upper()


def _page(messages: list[JsonDict], params: Mapping[str, Any]) -> tuple[list[JsonDict], str]:
    """One page of `messages` at the request's `cursor`, at most `limit` long (Slack's
    default 100), and the cursor of the next page ("" on the last)."""
    limit = max(1, min(int(_text(params, "limit") or 100), 1000))
    cursor = _text(params, "cursor")
    start = 0
    if cursor:
        with contextlib.suppress(ValueError):
            start = int(base64.b64decode(cursor).decode().removeprefix("next:"))
    page = messages[start : start + limit]
    more = start + limit < len(messages)
    return page, base64.b64encode(f"next:{start + limit}".encode()).decode() if more else ""


def _as_read(messages: list[JsonDict], params: Mapping[str, Any]) -> list[JsonDict]:
    """Messages as a history read returns them: their metadata only when asked for with
    `include_all_metadata`."""
    with_metadata = _text(params, "include_all_metadata").lower() in ("true", "1")
    read = copy.deepcopy(messages)
    if not with_metadata:
        for message in read:
            message.pop("metadata", None)
    return read


def _metadata_problem(metadata: Any) -> JsonDict | None:
    """Slack's answer to message metadata that is not an `event_type` and an object of
    `event_payload`, or None."""
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not metadata["event_type"]
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        return _error("invalid_metadata_format")
    return None


def _maybe_json(key: str, value: Any) -> Any:
    if key in JSON_STRING_FIELDS and isinstance(value, str) and value[:1] in ("[", "{"):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    return "" if value is None else str(value)


def _bearer_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


async def _read_params(request: web.Request) -> JsonDict:
    """Merge query string, form and JSON body; decode JSON-string fields like ``blocks``."""
    params: JsonDict = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return {k: _maybe_json(k, v) for k, v in params.items()}


async def _read_upload(request: web.Request) -> bytes:
    """The uploaded bytes: a raw body (as slack_sdk sends) or the first multipart file part."""
    if request.content_type != "multipart/form-data":
        return await request.read()
    form = await request.post()
    for value in form.values():
        if isinstance(value, web.FileField):
            return value.file.read()
        if isinstance(value, bytes):
            return value
    return b""


def _block_elements(block: Mapping[str, Any]) -> list[Any]:
    elements = list(block.get("elements") or [])
    if isinstance(block.get("accessory"), dict):
        elements.append(block["accessory"])
    return elements


# Block Kit as Slack checks it: which blocks exist, the text objects each takes, and the
# element counts (https://api.slack.com/reference/block-kit/blocks).
BLOCK_TYPES = frozenset({"section", "header", "context", "actions", "divider", "image", "input"})
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
CONTEXT_ELEMENT_LIMIT = 10
ACTIONS_ELEMENT_LIMIT = 25
BUTTON_TEXT_LIMIT = 75
BUTTON_URL_LIMIT = 3000
ACTION_ID_LIMIT = 255
BLOCK_ID_LIMIT = 255
BUTTON_STYLES = frozenset({"primary", "danger"})
# The confirmation dialog object: title, text, confirm and deny buttons.
CONFIRM_LIMITS = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
# The input block and its plain-text element.
INPUT_LABEL_LIMIT = 2000
INPUT_HINT_LIMIT = 2000
INPUT_ELEMENTS = frozenset(
    {
        "plain_text_input", "static_select", "multi_static_select", "users_select",
        "conversations_select", "channels_select", "datepicker", "timepicker", "checkboxes",
        "radio_buttons", "number_input", "email_text_input", "url_text_input",
    }
)
PLACEHOLDER_LIMIT = 150
TEXT_INPUT_LENGTH_LIMIT = 3000
# A modal: its title, submit and close buttons, and what it carries back.
MODAL_BUTTON_LIMIT = 24
PRIVATE_METADATA_LIMIT = 3000
CALLBACK_ID_LIMIT = 255


def _text_problem(text: Any, where: str, *, plain_only: bool = False) -> str | None:
    if not isinstance(text, dict) or text.get("type") not in TEXT_TYPES:
        return f"[ERROR] must provide an object with a text type {where}]"
    if plain_only and text["type"] != "plain_text":
        return f"[ERROR] must be a plain_text object {where}/type]"
    if not isinstance(text.get("text"), str) or not text["text"]:
        return f"[ERROR] must be more than 0 characters {where}/text]"
    return None


def _too_long(value: Any, limit: int, where: str) -> str | None:
    if len(str(value or "")) > limit:
        return f"[ERROR] must be less than {limit + 1} characters {where}]"
    return None


def _limited_text(
    text: Any, limit: int, where: str, *, plain_only: bool = False
) -> str | None:
    """A text object that must exist, be of a text type and not exceed `limit`."""
    problem = _text_problem(text, where, plain_only=plain_only)
    return problem or _too_long(text["text"], limit, f"{where}/text")


def _confirm_problem(confirm: Any, where: str) -> str | None:
    if not isinstance(confirm, dict):
        return f"[ERROR] must be an object {where}]"
    for key, limit in CONFIRM_LIMITS.items():
        problem = _limited_text(
            confirm.get(key), limit, f"{where}/{key}", plain_only=key != "text"
        )
        if problem:
            return problem
    if "style" in confirm and confirm["style"] not in BUTTON_STYLES:
        return f"[ERROR] must be one of primary, danger {where}/style]"
    return None


def _element_problem(element: Any, where: str) -> str | None:
    if not isinstance(element, dict):
        return f"[ERROR] must be an object {where}]"
    if element.get("type") == "plain_text_input":
        return _text_input_problem(element, where)
    if element.get("type") != "button":
        return None
    problem = _limited_text(element.get("text"), BUTTON_TEXT_LIMIT, f"{where}/text",
                            plain_only=True)
    if problem:
        return problem
    if len(str(element.get("value", ""))) > BUTTON_VALUE_LIMIT:
        return f"[ERROR] must be less than {BUTTON_VALUE_LIMIT + 1} characters {where}/value]"
    if len(str(element.get("action_id", ""))) > ACTION_ID_LIMIT:
        return f"[ERROR] must be less than {ACTION_ID_LIMIT + 1} characters {where}/action_id]"
    if "style" in element and element["style"] not in BUTTON_STYLES:
        return f"[ERROR] must be one of primary, danger {where}/style]"
    problem = _too_long(element.get("url"), BUTTON_URL_LIMIT, f"{where}/url")
    if problem:
        return problem
    if "confirm" in element:
        return _confirm_problem(element["confirm"], f"{where}/confirm")
    return None


def _text_input_problem(element: Mapping[str, Any], where: str) -> str | None:
    problem = _too_long(element.get("action_id"), ACTION_ID_LIMIT, f"{where}/action_id")
    if problem:
        return problem
    if "placeholder" in element:
        problem = _limited_text(
            element["placeholder"], PLACEHOLDER_LIMIT, f"{where}/placeholder", plain_only=True
        )
        if problem:
            return problem
    lengths = {}
    for key in ("min_length", "max_length"):
        if key in element:
            value = element[key]
            if not isinstance(value, int) or not 0 <= value <= TEXT_INPUT_LENGTH_LIMIT:
                return f"[ERROR] must be between 0 and {TEXT_INPUT_LENGTH_LIMIT} {where}/{key}]"
            lengths[key] = value
    if lengths.get("min_length", 0) > lengths.get("max_length", TEXT_INPUT_LENGTH_LIMIT):
        return f"[ERROR] min_length must not be more than max_length {where}/min_length]"
    return None


def _input_problem(block: Mapping[str, Any], where: str) -> str | None:
    problem = _limited_text(block.get("label"), INPUT_LABEL_LIMIT, f"{where}/label",
                            plain_only=True)
    if problem:
        return problem
    if "hint" in block:
        problem = _limited_text(block["hint"], INPUT_HINT_LIMIT, f"{where}/hint", plain_only=True)
        if problem:
            return problem
    if "optional" in block and not isinstance(block["optional"], bool):
        return f"[ERROR] must be a boolean {where}/optional]"
    element = block.get("element")
    if not isinstance(element, dict) or "type" not in element:
        return f"[ERROR] missing required field: element {where}]"
    if element["type"] not in INPUT_ELEMENTS:
        return f"[ERROR] invalid element type `{element['type']}` {where}/element/type]"
    return _element_problem(element, f"{where}/element")


def _block_problem(index: int, block: Any) -> str | None:
    where = f"[json-pointer:/blocks/{index}"
    if not isinstance(block, dict) or "type" not in block:
        return f"[ERROR] missing required field: type {where}]"
    kind = block["type"]
    if kind not in BLOCK_TYPES:
        return f"[ERROR] invalid block type `{kind}` {where}/type]"
    problem = _too_long(block.get("block_id"), BLOCK_ID_LIMIT, f"{where}/block_id")
    if problem:
        return problem
    if kind == "input":
        return _input_problem(block, where)
    if kind in ("section", "header"):
        problem = _text_problem(block.get("text"), f"{where}/text", plain_only=kind == "header")
        if problem and not (kind == "section" and block.get("fields")):
            return problem
        text_value = block["text"]["text"] if not problem else ""
        limit = SECTION_TEXT_LIMIT if kind == "section" else HEADER_TEXT_LIMIT
        if len(text_value) > limit:
            return f"[ERROR] must be less than {limit + 1} characters {where}/text/text]"
    if kind == "context":
        elements = block.get("elements") or []
        if not elements or len(elements) > CONTEXT_ELEMENT_LIMIT:
            return f"[ERROR] must provide 1 to {CONTEXT_ELEMENT_LIMIT} items {where}/elements]"
        for i, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "image":
                continue
            problem = _text_problem(element, f"{where}/elements/{i}")
            if problem:
                return problem
    if kind == "actions":
        elements = block.get("elements") or []
        if not elements or len(elements) > ACTIONS_ELEMENT_LIMIT:
            return f"[ERROR] must provide 1 to {ACTIONS_ELEMENT_LIMIT} items {where}/elements]"
    for i, element in enumerate(_block_elements(block) if kind != "context" else []):
        problem = _element_problem(element, f"{where}/elements/{i}")
        if problem:
            return problem
    return None


def _blocks_problem(blocks: Any, limit: int) -> str | None:
    """Why Slack would refuse these blocks, in Slack's own message format, or None."""
    if not isinstance(blocks, list):
        return "[ERROR] must be an array [json-pointer:/blocks]"
    if len(blocks) > limit:
        return f"[ERROR] no more than {limit} items allowed [json-pointer:/blocks]"
    problems = (_block_problem(i, block) for i, block in enumerate(blocks))
    return next((p for p in problems if p), None)


def _modal_problem(view: Mapping[str, Any]) -> str | None:
    """A modal's own fields, as views.open checks them."""
    where = "[json-pointer:/view"
    problem = _limited_text(view.get("title"), MODAL_BUTTON_LIMIT, f"{where}/title",
                            plain_only=True)
    if problem:
        return problem
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view["blocks"])
    if has_input and "submit" not in view:
        return f"[ERROR] must provide submit when the view has input blocks {where}/submit]"
    for key in ("submit", "close"):
        if key in view:
            problem = _limited_text(view[key], MODAL_BUTTON_LIMIT, f"{where}/{key}",
                                    plain_only=True)
            if problem:
                return problem
    problem = _too_long(
        view.get("private_metadata"), PRIVATE_METADATA_LIMIT, f"{where}/private_metadata"
    )
    return problem or _too_long(view.get("callback_id"), CALLBACK_ID_LIMIT, f"{where}/callback_id")


def _tz_fields(tz: str) -> JsonDict:
    now = datetime.now(UTC).astimezone(ZoneInfo(tz))
    offset = now.utcoffset()
    abbr = now.tzname() or tz
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return {"tz": tz, "tz_label": _TZ_LABELS.get(abbr, abbr), "tz_offset": seconds}


class SlackStandIn:
    """An aiohttp server that answers like slack.com, files.slack.com, hooks and Socket Mode."""

    def __init__(
        self, *, tokens: Iterable[str] | None = None, scopes: Iterable[str] | None = None
    ) -> None:
        """``tokens``: the accepted tokens; by default any ``xoxb-``/``xoxp-``/``xapp-`` one.
        ``scopes``: the bot token's scopes; a method needing another answers ``missing_scope``
        (as Slack does), and posting in a public channel the bot has not joined needs
        ``chat:write.public``. By default every scope is granted."""
        self.accepted_tokens: set[str] | None = set(tokens) if tokens is not None else None
        self.granted_scopes: set[str] | None = set(scopes) if scopes is not None else None
        self.calls: list[Call] = []
        # Called with each call as it is recorded (the demo prints them as they happen).
        self.listeners: list[Callable[[Call], None]] = []
        self.uploaded_files: dict[str, bytes] = {}
        self.views: dict[str, JsonDict] = {}
        self.home_tabs: dict[str, JsonDict] = {}
        self.socket_messages: list[JsonDict] = []
        self._channels: dict[str, _Channel] = {}
        self._names: dict[str, str] = {}
        self._users: dict[str, JsonDict] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._pending_files: dict[str, JsonDict] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._used_triggers: set[str] = set()
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._down = False
        self._faults: SlackFaults | None = None
        self._answers_to_lose: list[tuple[str, str | None]] = []
        self._last_ts_us = 0
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[JsonDict]] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._host = "127.0.0.1"
        self._methods: dict[str, MethodHandler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.join": self._conversations_join,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (a free port by default)."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{tag}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self._port = int(self._runner.addresses[0][1])
        self._host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    async def stop(self) -> None:
        """Close Socket Mode connections and the server."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
        for future in self._acks.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._port is None:
            raise RuntimeError("SlackStandIn is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``AsyncWebClient(base_url=...)``, with a trailing slash."""
        return f"{self.base_url}/api/"

    def response_url(self, tag: str) -> str:
        """A response_url to put in a payload; POSTs to it are recorded as method
        ``response_url:<tag>``. As on Slack, it takes five posts within thirty minutes of
        being handed out (``used_url`` and ``expired_url`` after), each with text or blocks."""
        self._response_urls.setdefault(tag, _ResponseUrl(time.monotonic()))
        return f"{self.base_url}/response/{tag}"

    def expire_response_url(self, tag: str) -> None:
        """Make a response_url as old as Slack lets one be (for tests of late answers)."""
        url = self._response_urls.get(tag)
        if url is not None:
            url.issued_at -= RESPONSE_URL_SECONDS

    # ------------------------------------------------------------- configuration

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
        channel: str | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail: HTTP ``status``, or ok:false ``error``.

        ``method`` may also be ``upload`` or ``response_url:<tag>``. With ``channel``, only
        calls whose ``channel`` argument is that (e.g. a direct message to one user) fail.
        """
        failure = _Failure(
            status=status, retry_after=retry_after, error=error, remaining=times, channel=channel
        )
        self._failures.setdefault(method, []).append(failure)

    def delay(self, method: str, seconds: float) -> None:
        """Make every call to ``method`` take ``seconds`` before answering (0 to undo)."""
        self._delays[method] = seconds

    def lose_next_answer(self, method: str, *, times: int = 1, channel: str | None = None) -> None:
        """Carry out the next ``times`` successful calls to ``method`` (with ``channel``,
        only those whose ``channel`` argument is that), then drop the connection instead
        of answering: the message is posted, the caller hears nothing."""
        self._answers_to_lose.extend([(method, channel)] * times)

    def inject_faults(self, faults: SlackFaults | None) -> SlackFaults | None:
        """From now on, fail calls at random as `faults` says (5xx, bursts of 429, answers
        lost after the call was carried out); None to stop. Returns `faults`, which counts
        what it did."""
        self._faults = faults
        return faults

    def set_down(self, down: bool = True) -> None:
        """While down, every API, upload and response_url call answers HTTP 503."""
        self._down = down

    def set_usergroup(self, usergroup_id: str, users: Iterable[str]) -> None:
        """Members returned by ``usergroups.users.list`` for ``usergroup_id``."""
        self._usergroups[usergroup_id] = list(users)

    def set_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        display_name: str | None = None,
        tz: str = DEFAULT_TZ,
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> None:
        """Define the profile ``users.info`` returns for ``user_id``."""
        name = name or user_id.lower()
        real_name = real_name or name.title()
        profile = {
            "real_name": real_name,
            "display_name": name if display_name is None else display_name,  # "" as Slack
            "real_name_normalized": real_name,
            "display_name_normalized": name if display_name is None else display_name,
            "email": email or f"{name}@example.com",
            "team": TEAM_ID,
        }
        self._users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name,
            "deleted": deleted,
            "is_bot": is_bot,
            "is_admin": False,
            "is_app_user": False,
            "updated": 1700000000,
            "tz": tz,
            "profile": profile,
        }

    def add_channel(self, name: str, channel_id: str | None = None) -> str:
        """Register a channel (``G…`` ids are private); returns its id."""
        name = name.lstrip("#").lower()
        channel_id = channel_id or "C" + _stable_suffix(name)
        self._names[name] = channel_id
        channel = self._channel(channel_id)
        channel.name = name
        return channel_id

    def channel_id(self, ref: str) -> str:
        """The id the stand-in uses for a channel name, channel id or user id (DM)."""
        channel = self._resolve(ref, allow_names=True)
        if channel is None:
            raise KeyError(ref)
        return channel.id

    def messages(self, channel: str) -> list[JsonDict]:
        """Messages stored for a channel (name or id), oldest first, replies included."""
        return copy.deepcopy(self._channel(self.channel_id(channel)).messages)

    def conversations(self) -> dict[str, list[JsonDict]]:
        """Every conversation holding messages (channels and DMs, by id), as `messages`."""
        return {
            channel.id: copy.deepcopy(channel.messages)
            for channel in self._channels.values()
            if channel.messages
        }

    def seed_message(
        self,
        channel: str,
        text: str = "",
        *,
        user: str = "U0CORA",
        thread_ts: str | None = None,
        blocks: list[JsonDict] | None = None,
    ) -> str:
        """Store a message as if someone had posted it; returns its ts."""
        ts = self._next_ts()
        message: JsonDict = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "team": TEAM_ID,
        }
        if blocks is not None:
            message["blocks"] = blocks
        self._store(self._channel(self.channel_id(channel)), message, thread_ts)
        return ts

    # --------------------------------------------------------------- assertions

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls to ``method``, oldest first (failed ones included)."""
        return [c for c in self.calls if c.method == method]

    def clear(self) -> None:
        """Forget recorded calls and socket messages (channels and messages stay)."""
        self.calls.clear()
        self.socket_messages.clear()

    async def wait_for(
        self,
        method: str,
        predicate: CallPredicate | None = None,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[Call]:
        """Wait until ``count`` calls to ``method`` (matching ``predicate``) were received."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if predicate is None or predicate(c)]

        try:
            await self._wait_until(lambda: len(matching()) >= count, timeout)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(method, predicate, count, timeout)) from None
        return matching()

    async def wait_socket_connected(self, timeout: float = 5.0) -> None:
        """Wait until a Socket Mode client is connected."""
        try:
            await self._wait_until(lambda: bool(self._sockets), timeout)
        except TimeoutError:
            raise TimeoutError(f"no Socket Mode client connected within {timeout}s") from None

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode connections are open."""
        return len(self._sockets)

    def _timeout_message(
        self, method: str, predicate: CallPredicate | None, count: int, timeout: float
    ) -> str:
        matched = self.calls_to(method)
        if predicate is not None:
            matched = [c for c in matched if predicate(c)]
        received = "\n".join(f"  - {c.describe()}" for c in self.calls) or "  (nothing)"
        condition = " matching the predicate" if predicate else ""
        return (
            f"timed out after {timeout}s waiting for {count} call(s) to {method}{condition}; "
            f"{len(matched)} matched. Received:\n{received}"
        )

    async def _wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            if condition():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _record(
        self,
        method: str,
        params: JsonDict,
        request: web.Request,
        received_at: float,
        reply: _Reply,
        *,
        answer_lost: bool = False,
    ) -> None:
        call = Call(
            method=method,
            params=params,
            headers=dict(request.headers),
            received_at=received_at,
            failed=reply.failed,
            status=reply.status,
            error=reply.error,
            response=reply.body if isinstance(reply.body, dict) else {},
            answer_lost=answer_lost,
        )
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)
        self._notify()

    # ---------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        method = request.match_info["method"]
        params = await _read_params(request)
        token = _bearer_token(request) or _text(params, "token")
        params.pop("token", None)
        faults = self._faults
        outcome = faults.draw(method) if faults is not None else Outcome.ANSWER
        if faults is not None and outcome is Outcome.SERVER_ERROR:
            status = faults.server_error()
            reply = _Reply(f"{status} {HTTPStatus(status).phrase}", status)
        elif faults is not None and outcome is Outcome.RATE_LIMITED:
            reply = _Failure(429, faults.retry_after, None, 1).reply()
        else:
            reply = await self._answer(
                method, lambda: self._call_method(method, params, token), params
            )
        drawn = faults is not None and outcome is Outcome.LOSE_ANSWER
        asked = next(
            (
                entry
                for entry in self._answers_to_lose
                if entry[0] == method and entry[1] in (None, str(params.get("channel", "")))
            ),
            None,
        )
        lost = not reply.failed and (drawn or asked is not None)
        if lost and asked is not None:
            self._answers_to_lose.remove(asked)
        if lost and faults is not None:
            faults.answers_lost += 1
        self._record(method, params, request, received_at, reply, answer_lost=lost)
        if lost and request.transport is not None:
            request.transport.abort()  # Slack did it; the caller hears nothing back
        return reply.to_response()

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        file_id = request.match_info["file_id"]
        data = await _read_upload(request)
        params: JsonDict = {"file_id": file_id, "length": len(data)}
        reply = await self._answer("upload", lambda: self._store_upload(file_id, data))
        self._record("upload", params, request, received_at, reply)
        return reply.to_response()

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        tag = request.match_info["tag"]
        method = f"response_url:{tag}"
        params = await _read_params(request)
        reply = await self._answer(method, lambda: self._respond(tag, params), params)
        self._record(method, params, request, received_at, reply)
        return reply.to_response()

    async def _answer(
        self, method: str, answer: Callable[[], _Reply], params: Mapping[str, Any] | None = None
    ) -> _Reply:
        """Apply delay, outage and injected failures, else ``answer()``."""
        seconds = self._delays.get(method, 0.0)
        if seconds > 0:
            await asyncio.sleep(seconds)
        if self._down:
            return _Reply("503 Service Unavailable", 503)
        failure = self._take_failure(method, params or {})
        return failure.reply() if failure is not None else answer()

    def _respond(self, tag: str, params: JsonDict) -> _Reply:
        """What Slack answers a post to a response_url: plain text, an error word on failure."""
        url = self._response_urls.get(tag)
        if url is None:
            return _Reply("invalid_url", 404, code="invalid_url")
        if time.monotonic() - url.issued_at > RESPONSE_URL_SECONDS:
            return _Reply("expired_url", 404, code="expired_url")
        if url.uses >= RESPONSE_URL_USES:
            return _Reply("used_url", 404, code="used_url")
        if not any(params.get(k) for k in ("text", "blocks", "attachments")) and not params.get(
            "delete_original"
        ):
            return _Reply("no_text", 400, code="no_text")
        if params.get("response_type", "ephemeral") not in RESPONSE_TYPES:
            return _Reply("invalid_response_type", 400, code="invalid_response_type")
        if params.get("blocks"):
            problem = _blocks_problem(params["blocks"], MESSAGE_BLOCK_LIMIT)
            if problem is not None:
                return _Reply("invalid_blocks", 400, code="invalid_blocks")
        url.uses += 1
        return _Reply({"ok": True})

    def _take_failure(self, method: str, params: Mapping[str, Any]) -> _Failure | None:
        queue = self._failures.get(method)
        failure = next((f for f in queue or () if f.matches(params)), None)
        if queue is None or failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.remove(failure)
        return failure

    def _call_method(self, method: str, params: JsonDict, token: str) -> _Reply:
        handler = self._methods.get(method)
        if handler is None:
            return _Reply({"ok": False, "error": "unknown_method", "req_method": method})
        auth_error = self._auth_error(method, token)
        if auth_error is not None:
            return _Reply(_error(auth_error))
        scope_error = self._scope_error(method, token, params)
        if scope_error is not None:
            return _Reply(scope_error)
        return _Reply(handler(params, token))

    def _scope_error(self, method: str, token: str, params: JsonDict) -> JsonDict | None:
        granted = self.granted_scopes
        if granted is None or not token.startswith("xoxb-"):
            return None
        needed = METHOD_SCOPES.get(method, ())
        if needed and not granted.intersection(needed):
            return {
                "ok": False,
                "error": "missing_scope",
                "needed": ",".join(needed),
                "provided": ",".join(sorted(granted)),
            }
        if method == "chat.postMessage" and "chat:write.public" not in granted:
            channel = self._resolve(params.get("channel"), allow_names=True)
            if channel is not None and channel.id.startswith("C") and not channel.is_member:
                return _error("not_in_channel")
        return None

    def _auth_error(self, method: str, token: str) -> str | None:
        if not token:
            return "not_authed"
        if not token.startswith(("xoxb-", "xoxp-", "xapp-")):
            return "invalid_auth"
        if self.accepted_tokens is not None and token not in self.accepted_tokens:
            return "invalid_auth"
        is_app_token = token.startswith("xapp-")
        if is_app_token != (method == "apps.connections.open"):
            return "not_allowed_token_type"
        return None

    # ------------------------------------------------------------- channel state

    def _next_ts(self) -> str:
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08d}"

    def _channel(self, channel_id: str) -> _Channel:
        if channel_id not in self._channels:
            self._channels[channel_id] = _Channel(id=channel_id, name=channel_id.lower())
        return self._channels[channel_id]

    def _resolve(self, ref: Any, *, allow_names: bool) -> _Channel | None:
        """A channel from an id, a user id (its DM) or, if allowed, a name like ``#deploys``."""
        ref = str(ref or "").strip()
        if _ID_RE.match(ref):
            return self._dm(ref) if ref[0] in "UW" else self._channel(ref)
        if not ref or not allow_names:
            return None
        name = ref.lstrip("#").lower()
        return self._channel(self._names.get(name) or self.add_channel(name))

    def _dm(self, user_id: str) -> _Channel:
        channel = self._channel("D" + _stable_suffix(user_id))
        channel.user = user_id
        return channel

    def _store(self, channel: _Channel, message: JsonDict, thread_ts: str | None) -> None:
        parent = channel.find(thread_ts) if thread_ts else None
        if thread_ts:
            message["thread_ts"] = thread_ts
        if parent is not None:
            message["parent_user_id"] = parent.get("user")
            replies = [
                m
                for m in channel.messages
                if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
            ] + [message]
            parent.update(
                {
                    "thread_ts": thread_ts,
                    "reply_count": len(replies),
                    "reply_users": sorted({str(m.get("user")) for m in replies}),
                    "reply_users_count": len({m.get("user") for m in replies}),
                    "latest_reply": message["ts"],
                }
            )
        channel.messages.append(message)

    def _bot_message(self, params: JsonDict, ts: str) -> JsonDict:
        message: JsonDict = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": _text(params, "text"),
            "team": TEAM_ID,
            "bot_profile": {
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": BOT_NAME,
                "team_id": TEAM_ID,
                "deleted": False,
            },
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key) is not None:
                message[key] = copy.deepcopy(params[key])
        return message

    @staticmethod
    def _content_problem(params: JsonDict) -> JsonDict | None:
        """The error Slack gives for a message's text/blocks, or None."""
        if not any(params.get(k) for k in ("text", "blocks", "attachments")):
            return _error("no_text")
        if len(_text(params, "text")) > MESSAGE_TEXT_LIMIT:
            return _error("msg_too_long")
        if params.get("blocks"):
            problem = _blocks_problem(params["blocks"], MESSAGE_BLOCK_LIMIT)
            if problem is not None:
                error = "invalid_blocks_format" if "array" in problem else "invalid_blocks"
                return _error(error, problem)
        return None

    # ------------------------------------------------------------ Web API methods

    def _auth_test(self, params: JsonDict, token: str) -> JsonDict:
        body: JsonDict = {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "team_id": TEAM_ID,
            "is_enterprise_install": False,
        }
        if token.startswith("xoxb-"):
            body.update(user=BOT_NAME, user_id=BOT_USER_ID, bot_id=BOT_ID)
        else:
            body.update(user="admin", user_id=INSTALLER_USER_ID)
        return body

    def _apps_connections_open(self, params: JsonDict, token: str) -> JsonDict:
        return {"ok": True, "url": f"ws://{self._host}:{self._port}/socket"}

    def _chat_post_message(self, params: JsonDict, token: str) -> JsonDict:
        channel = self._resolve(params.get("channel"), allow_names=True)
        if channel is None:
            return _error("channel_not_found")
        problem = self._content_problem(params) or _metadata_problem(params.get("metadata"))
        if problem is not None:
            return problem
        message = self._bot_message(params, self._next_ts())
        thread_ts = _text(params, "thread_ts") or None
        if thread_ts and str(params.get("reply_broadcast")).lower() in ("true", "1"):
            message["subtype"] = "thread_broadcast"
        self._store(channel, message, thread_ts)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message["ts"],
            "message": copy.deepcopy(message),
        }

    def _existing_message(self, params: JsonDict) -> tuple[_Channel, JsonDict] | JsonDict:
        channel = self._resolve(params.get("channel"), allow_names=False)
        if channel is None:
            return _error("channel_not_found")
        message = channel.find(_text(params, "ts"))
        if message is None:
            return _error("message_not_found")
        return channel, message

    def _chat_update(self, params: JsonDict, token: str) -> JsonDict:
        found = self._existing_message(params)
        if isinstance(found, dict):
            return found
        channel, message = found
        if params.get("blocks"):
            problem = self._content_problem(params)
            if problem is not None:
                return problem
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                message[key] = copy.deepcopy(params[key])
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_delete(self, params: JsonDict, token: str) -> JsonDict:
        found = self._existing_message(params)
        if isinstance(found, dict):
            return found
        channel, message = found
        channel.messages.remove(message)
        return {"ok": True, "channel": channel.id, "ts": message["ts"]}

    def _chat_post_ephemeral(self, params: JsonDict, token: str) -> JsonDict:
        channel = self._resolve(params.get("channel"), allow_names=True)
        if channel is None:
            return _error("channel_not_found")
        if not params.get("user"):
            return _error("user_not_found")
        problem = self._content_problem(params)
        return problem or {"ok": True, "message_ts": self._next_ts()}

    def _chat_get_permalink(self, params: JsonDict, token: str) -> JsonDict:
        found = self._existing_message({**params, "ts": params.get("message_ts")})
        if isinstance(found, dict):
            return found
        channel, message = found
        archive = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}"
        link = f"{archive}/p{message['ts'].replace('.', '')}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    def _conversations_open(self, params: JsonDict, token: str) -> JsonDict:
        users = [u for u in _text(params, "users").split(",") if u]
        if params.get("channel"):
            channel = self._resolve(params["channel"], allow_names=False)
        elif len(users) == 1:
            channel = self._dm(users[0])
        elif users:
            channel = self._channel("G" + _stable_suffix(",".join(sorted(users))))
        else:
            return _error("users_list_not_supplied")
        if channel is None:
            return _error("channel_not_found")
        body: JsonDict = {"ok": True, "channel": {"id": channel.id}}
        if channel.is_open:
            body.update(no_op=True, already_open=True)
        channel.is_open = True
        if str(params.get("return_im")).lower() in ("true", "1"):
            body["channel"] = channel.info()
        return body

    def _conversations_info(self, params: JsonDict, token: str) -> JsonDict:
        channel = self._resolve(params.get("channel"), allow_names=False)
        if channel is None:
            return _error("channel_not_found")
        return {"ok": True, "channel": channel.info()}

    def _conversations_list(self, params: JsonDict, token: str) -> JsonDict:
        types = set((_text(params, "types") or "public_channel").split(","))
        kinds = {"C": "public_channel", "G": "private_channel", "D": "im"}
        channels = [c.info() for c in self._channels.values() if kinds.get(c.id[0]) in types]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def _conversations_join(self, params: JsonDict, token: str) -> JsonDict:
        channel = self._resolve(params.get("channel"), allow_names=False)
        if channel is None:
            return _error("channel_not_found")
        if channel.is_im:
            return _error("method_not_supported_for_channel_type")
        body: JsonDict = {"ok": True}
        if channel.is_member:
            body.update(
                warning="already_in_channel", response_metadata={"warnings": ["already_in_channel"]}
            )
        channel.is_member = True
        body["channel"] = channel.info()
        return body

    def _conversation(self, params: JsonDict) -> _Channel | None:
        """The conversation a read names by its ID: a user ID is not one (posting to it
        reaches the DM, but reading wants the DM's own `D…` ID, from conversations.open)."""
        if _text(params, "channel")[:1] in ("U", "W"):
            return None
        return self._resolve(params.get("channel"), allow_names=False)

    def _conversations_history(self, params: JsonDict, token: str) -> JsonDict:
        channel = self._conversation(params)
        if channel is None:
            return _error("channel_not_found")
        oldest = float(_text(params, "oldest") or 0)
        latest = float(_text(params, "latest") or "inf")
        top_level = [
            m
            for m in reversed(channel.messages)
            if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast"
        ]
        in_range = [m for m in top_level if oldest < float(m["ts"]) < latest]
        page, next_cursor = _page(in_range, params)
        return {
            "ok": True,
            "messages": _as_read(page, params),
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, params: JsonDict, token: str) -> JsonDict:
        if self._conversation(params) is None:
            return _error("channel_not_found")
        found = self._existing_message(params)
        if isinstance(found, dict):
            return _error("thread_not_found") if found["error"] == "message_not_found" else found
        channel, parent = found
        ts = parent["ts"]
        thread = [m for m in channel.messages if m["ts"] == ts or m.get("thread_ts") == ts]
        page, next_cursor = _page(thread, params)
        return {
            "ok": True,
            "messages": _as_read(page, params),
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _users_info(self, params: JsonDict, token: str) -> JsonDict:
        user_id = _text(params, "user")
        if not _ID_RE.match(user_id) or user_id[0] not in "UW":
            return _error("user_not_found")
        if user_id not in self._users:
            self.set_user(user_id)
        user = copy.deepcopy(self._users[user_id])
        user.update(_tz_fields(user["tz"]))
        return {"ok": True, "user": user}

    def _usergroups_users_list(self, params: JsonDict, token: str) -> JsonDict:
        usergroup = _text(params, "usergroup")
        if usergroup not in self._usergroups:
            return _error("no_such_subteam")
        return {"ok": True, "users": list(self._usergroups[usergroup])}

    # ----------------------------------------------------------------- views

    def _view_body(self, view: JsonDict, view_id: str, root_id: str | None = None) -> JsonDict:
        return {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view.get("type"),
            "blocks": copy.deepcopy(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "title": view.get("title"),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "root_view_id": root_id or view_id,
            "previous_view_id": None,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }

    @staticmethod
    def _view_problem(view: Any, expected_type: str | None) -> JsonDict | None:
        if not isinstance(view, dict):
            return _error("invalid_arguments", "[ERROR] missing required field: view")
        if expected_type is not None and view.get("type") != expected_type:
            return _error(
                "invalid_arguments", f"[ERROR] must be '{expected_type}' [json-pointer:/view/type]"
            )
        problem = _blocks_problem(view.get("blocks", []), VIEW_BLOCK_LIMIT)
        if problem is None and view.get("type") == "modal":
            problem = _modal_problem(view)
        return _error("invalid_arguments", problem) if problem else None

    def _views_publish(self, params: JsonDict, token: str) -> JsonDict:
        user_id = _text(params, "user_id")
        if not user_id:
            return _error("invalid_arguments", "[ERROR] missing required field: user_id")
        problem = self._view_problem(params.get("view"), "home")
        if problem is not None:
            return problem
        previous = self.home_tabs.get(user_id)
        view_id = previous["id"] if previous else self._new_id("V")
        view = self._view_body(params["view"], view_id)
        self.home_tabs[user_id] = self.views[view_id] = view
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_open(self, params: JsonDict, token: str) -> JsonDict:
        trigger = _text(params, "trigger_id") or _text(params, "interactivity_pointer")
        if not trigger:
            return _error("invalid_arguments", "[ERROR] missing required field: trigger_id")
        if trigger in self._used_triggers:
            return _error("exchanged_trigger_id")  # a trigger opens one view, once
        problem = self._view_problem(params.get("view"), "modal")
        if problem is not None:
            return problem
        self._used_triggers.add(trigger)
        view_id = self._new_id("V")
        view = self.views[view_id] = self._view_body(params["view"], view_id)
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_update(self, params: JsonDict, token: str) -> JsonDict:
        view_id, external_id = _text(params, "view_id"), _text(params, "external_id")
        current = self.views.get(view_id) or next(
            (v for v in self.views.values() if external_id and v["external_id"] == external_id),
            None,
        )
        if current is None:
            return _error("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            return _error("hash_conflict")
        problem = self._view_problem(params.get("view"), None)
        if problem is not None:
            return problem
        view = self._view_body(params["view"], current["id"], current["root_view_id"])
        self.views[current["id"]] = view
        return {"ok": True, "view": copy.deepcopy(view)}

    # ----------------------------------------------------------------- files

    def _files_get_upload_url(self, params: JsonDict, token: str) -> JsonDict:
        filename, length = _text(params, "filename"), _text(params, "length")
        if not filename or not length.isdigit():
            return _error("invalid_arguments", "[ERROR] missing required field: filename/length")
        if len(_text(params, "alt_txt")) > ALT_TXT_LIMIT:
            return _error("alt_txt_too_large")
        file_id = self._new_id("F")
        self._pending_files[file_id] = {
            "name": filename,
            "length": int(length),
            "alt_txt": params.get("alt_txt"),
        }
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _store_upload(self, file_id: str, data: bytes) -> _Reply:
        if file_id not in self._pending_files:
            return _Reply("404 Not Found", 404)
        self.uploaded_files[file_id] = data
        return _Reply(f"OK - {len(data)}")

    def _file_object(self, file_id: str, title: str | None) -> JsonDict:
        pending = self._pending_files[file_id]
        name = pending["name"]
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        private = f"{self.base_url}/files-pri/{TEAM_ID}-{file_id}/{name}"
        now = int(time.time())
        return {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": BOT_USER_ID,
            "user_team": TEAM_ID,
            "editable": False,
            "size": len(self.uploaded_files[file_id]),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": private,
            "url_private_download": f"{private}?download=1",
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{BOT_USER_ID}/{file_id}/{name}",
            "comments_count": 0,
            "is_starred": False,
            "shares": {},
            "channels": [],
            "groups": [],
            "ims": [],
            "has_more_shares": False,
            "has_rich_preview": False,
            "file_access": "visible",
            "alt_txt": pending.get("alt_txt"),
        }

    def _files_complete_upload(self, params: JsonDict, token: str) -> JsonDict:
        items = params.get("files")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return _error("invalid_arguments", "[ERROR] missing required field: files")
        unknown = [i.get("id") for i in items if i.get("id") not in self.uploaded_files]
        if unknown:
            return _error("file_not_found", f"[ERROR] not uploaded: {unknown}")
        files = [self._file_object(i["id"], i.get("title")) for i in items]
        channel_ref = params.get("channel_id") or _text(params, "channels").split(",")[0]
        if channel_ref:
            channel = self._resolve(channel_ref, allow_names=False)
            if channel is None:
                return _error("channel_not_found")
            self._share_files(channel, files, params)
        return {"ok": True, "files": files}

    def _share_files(self, channel: _Channel, files: list[JsonDict], params: JsonDict) -> None:
        for file in files:
            file["is_public"] = not channel.is_im
            file["ims" if channel.is_im else "channels"] = [channel.id]
        message = self._bot_message({"text": _text(params, "initial_comment")}, self._next_ts())
        message.update(files=copy.deepcopy(files), upload=True, display_as_bot=False)
        self._store(channel, message, _text(params, "thread_ts") or None)

    # ----------------------------------------------------------- Socket Mode

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        await ws.send_json(self._hello())
        self._sockets.append(ws)
        self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
            self._notify()
        return ws

    def _hello(self) -> JsonDict:
        return {
            "type": "hello",
            "num_connections": len(self._sockets) + 1,
            "debug_info": {
                "host": "applink-standin",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": APP_ID},
        }

    def _on_socket_text(self, data: str) -> None:
        with contextlib.suppress(ValueError):
            message = json.loads(data)
            if not isinstance(message, dict):
                return
            self.socket_messages.append(message)
            future = self._acks.get(str(message.get("envelope_id")))
            if future is not None and not future.done():
                future.set_result(message)
            self._notify()

    async def send_envelope(
        self,
        type_: str,
        payload: JsonDict,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        accepts_response_payload: bool = True,
        timeout: float = 5.0,
    ) -> JsonDict:
        """Send an envelope to the newest Socket Mode connection; return the client's ack."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.wait_socket_connected(timeout)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        future: asyncio.Future[JsonDict] = loop.create_future()
        self._acks[envelope_id] = future
        try:
            await self._sockets[-1].send_json(envelope)
            return await asyncio.wait_for(future, max(deadline - loop.time(), 0.01))
        except TimeoutError:
            raise TimeoutError(
                f"no ack for {type_} envelope {envelope_id} within {timeout}s"
            ) from None
        finally:
            self._acks.pop(envelope_id, None)

    async def disconnect_socket(self, reason: str = "refresh_requested") -> None:
        """Ask connected clients to reconnect, as Slack does before recycling a connection."""
        message = {
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-standin"},
        }
        for ws in list(self._sockets):
            await ws.send_json(message)
