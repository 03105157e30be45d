"""The Slack stand-in speaks Slack's real protocol: driven here by the real slack_sdk clients."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.standin.faults import SlackFaults
from bot.standin.web_api import SlackStandIn

try:
    from tests.support import slack_requests
except ModuleNotFoundError:  # pytest's pythonpath lacks the repo root: add it
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support import slack_requests

block_action_body = slack_requests.block_action_body
post_signed = slack_requests.post_signed
signed_headers = slack_requests.signed_headers
slash_body = slack_requests.slash_body
slash_payload = slack_requests.slash_payload

SECRET = "test-signing-secret"


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    server = SlackStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def client(standin: SlackStandIn) -> AsyncWebClient:
    """A client that surfaces every failure (no retries), as the app may configure it."""
    return AsyncWebClient(base_url=standin.api_url, token="xoxb-test", retry_handlers=[])


def section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# --------------------------------------------------------------------------- Web API


async def test_api_url_ends_with_slash_and_auth_test_identifies_the_bot(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    assert standin.api_url.endswith("/api/")
    resp = await client.auth_test()
    assert resp["ok"] is True
    assert resp["bot_id"].startswith("B") and resp["user_id"].startswith("U")
    assert resp["url"].startswith("https://") and resp["team_id"].startswith("T")
    call = standin.calls_to("auth.test")[0]
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    assert not call.failed


async def test_post_message_by_name_returns_channel_id_and_increasing_ts(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    first = await client.chat_postMessage(channel="#deployments", text="one")
    second = await client.chat_postMessage(channel="deployments", text="two", blocks=[section("b")])

    assert first["channel"] == second["channel"]
    assert first["channel"].startswith("C") and first["channel"] != "deployments"
    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["text"] == "two"
    assert second["message"]["blocks"] == [section("b")]
    assert second["message"]["bot_id"] and second["message"]["ts"] == second["ts"]
    by_id = await client.chat_postMessage(channel=first["channel"], text="three")
    assert by_id["channel"] == first["channel"]

    calls = standin.calls_to("chat.postMessage")
    assert [c.params["channel"] for c in calls] == ["#deployments", "deployments", first["channel"]]
    assert calls[1].params["blocks"] == [section("b")]  # JSON body kept as objects


async def test_form_encoded_blocks_are_parsed_like_json(standin: SlackStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        form = {"channel": "C0DEPLOY", "blocks": '[{"type": "divider"}]', "token": "xoxb-form"}
        async with session.post(standin.api_url + "chat.postMessage", data=form) as resp:
            body = await resp.json()
    assert body["ok"] is True and body["channel"] == "C0DEPLOY"
    call = standin.calls_to("chat.postMessage")[0]
    assert call.params["blocks"] == [{"type": "divider"}]
    assert "token" not in call.params


async def test_a_user_id_as_channel_is_a_dm(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="U0CORA", text="psst")
    opened = await client.conversations_open(users="U0CORA")
    assert posted["channel"].startswith("D")
    assert opened["channel"]["id"] == posted["channel"]


async def test_thread_replies_appear_in_replies_and_not_in_history(
    client: AsyncWebClient,
) -> None:
    parent = await client.chat_postMessage(channel="#deployments", text="rollout started")
    channel = parent["channel"]
    reply = await client.chat_postMessage(channel=channel, thread_ts=parent["ts"], text="stage 1")
    later = await client.chat_postMessage(channel=channel, text="another rollout")

    assert reply["message"]["thread_ts"] == parent["ts"]
    replies = await client.conversations_replies(channel=channel, ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["rollout started", "stage 1"]
    assert replies["messages"][0]["reply_count"] == 1

    history = await client.conversations_history(channel=channel)
    assert [m["ts"] for m in history["messages"]] == [later["ts"], parent["ts"]]  # newest first


async def test_chat_update_changes_the_message_and_is_recorded(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="#deployments", text="stage 1/3")
    updated = await client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="stage 2/3", blocks=[section("2/3")]
    )
    assert updated["ts"] == posted["ts"] and updated["text"] == "stage 2/3"
    assert updated["message"]["blocks"] == [section("2/3")]
    history = await client.conversations_history(channel=posted["channel"])
    assert history["messages"][0]["text"] == "stage 2/3"
    (call,) = standin.calls_to("chat.update")
    assert call.params["ts"] == posted["ts"] and call.params["text"] == "stage 2/3"

    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel=posted["channel"], ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_post_message_validation_errors(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as no_channel:
        await client.chat_postMessage(channel="", text="x")
    assert no_channel.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as no_text:
        await client.chat_postMessage(channel="#deployments")
    assert no_text.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as too_many:
        await client.chat_postMessage(channel="#deployments", blocks=[section("x")] * 51)
    assert too_many.value.response["error"] == "invalid_blocks"
    assert too_many.value.response.status_code == 200


def _button(text: str, value: str = "v") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "value": value}


BAD_BLOCKS = [
    ("unknown block type", [{"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}],
     "invalid block type"),
    ("header in mrkdwn", [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}],
     "must be a plain_text object"),
    ("section without text", [{"type": "section"}], "must provide an object with a text type"),
    ("empty text", [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}],
     "must be more than 0 characters"),
    ("11 context elements",
     [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}],
     "must provide 1 to 10 items"),
    ("empty actions", [{"type": "actions", "elements": []}], "must provide 1 to 25 items"),
    ("button text too long", [{"type": "actions", "elements": [_button("x" * 76)]}],
     "must be less than 76 characters"),
]


@pytest.mark.parametrize(("why", "blocks", "message"), BAD_BLOCKS, ids=[b[0] for b in BAD_BLOCKS])
async def test_blocks_slack_would_refuse_are_refused(
    client: AsyncWebClient, why: str, blocks: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="#deployments", text="x", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks"
    assert message in str(refused.value.response["response_metadata"]["messages"])
    ok = [{"type": "context", "elements": [{"type": "mrkdwn", "text": "fine"}]},
          {"type": "actions", "elements": [_button("Advance to next")]}]
    assert (await client.chat_postMessage(channel="#deployments", text="x", blocks=ok))["ok"]


async def test_users_and_usergroups(standin: SlackStandIn, client: AsyncWebClient) -> None:
    standin.set_user("U0CORA", name="cora", real_name="Cora Diaz")
    standin.set_usergroup("S0ONCALL", ["U0CORA", "U0BEN"])
    user = (await client.users_info(user="U0CORA"))["user"]
    assert user["real_name"] == "Cora Diaz" and user["profile"]["display_name"] == "cora"
    assert user["tz"] == "Europe/Paris" and user["tz_offset"] in (3600, 7200)
    members = await client.usergroups_users_list(usergroup="S0ONCALL")
    assert members["users"] == ["U0CORA", "U0BEN"]


async def test_views_publish_and_update(client: AsyncWebClient) -> None:
    home = {"type": "home", "blocks": [section("rollouts")]}
    published = await client.views_publish(user_id="U0CORA", view=home)
    assert published["view"]["id"].startswith("V")
    assert published["view"]["blocks"] == home["blocks"]
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Pause"}, "blocks": []}
    opened = await client.views_open(trigger_id="1.2.abc", view=modal)
    updated = await client.views_update(view_id=opened["view"]["id"], view=modal)
    assert updated["view"]["id"] == opened["view"]["id"]
    with pytest.raises(SlackApiError) as conflict:
        await client.views_update(view_id=opened["view"]["id"], view=modal, hash="stale")
    assert conflict.value.response["error"] == "hash_conflict"


def _modal(**changes: Any) -> dict[str, Any]:
    field = {
        "type": "input",
        "block_id": "reason",
        "label": {"type": "plain_text", "text": "Why?"},
        "element": {"type": "plain_text_input", "action_id": "reason", "max_length": 500},
    }
    view = {
        "type": "modal",
        "callback_id": "rollout_reason",
        "title": {"type": "plain_text", "text": "Pause the rollout"},
        "submit": {"type": "plain_text", "text": "Pause"},
        "blocks": [section("Pause *phase-4*?"), field],
    }
    view.update(changes)
    return view


BAD_MODALS = [
    ("title over 24", _modal(title={"type": "plain_text", "text": "Roll back the phase-4 rollout"}),
     "must be less than 25 characters [json-pointer:/view/title/text]"),
    ("inputs without submit", {k: v for k, v in _modal().items() if k != "submit"},
     "must provide submit"),
    ("metadata over 3000", _modal(private_metadata="x" * 3001),
     "must be less than 3001 characters [json-pointer:/view/private_metadata]"),
    ("input without label", _modal(blocks=[{"type": "input", "element": {
        "type": "plain_text_input", "action_id": "a"}}]),
     "must provide an object with a text type [json-pointer:/blocks/0/label]"),
    ("input with a button", _modal(blocks=[{
        "type": "input", "label": {"type": "plain_text", "text": "x"},
        "element": _button("x")}]),
     "invalid element type `button` [json-pointer:/blocks/0/element/type]"),
    ("max_length over 3000", _modal(blocks=[{
        "type": "input", "label": {"type": "plain_text", "text": "x"},
        "element": {"type": "plain_text_input", "action_id": "a", "max_length": 5000}}]),
     "must be between 0 and 3000 [json-pointer:/blocks/0/element/max_length]"),
]


@pytest.mark.parametrize(("why", "view", "message"), BAD_MODALS, ids=[m[0] for m in BAD_MODALS])
async def test_views_open_refuses_modals_slack_would_refuse(
    client: AsyncWebClient, why: str, view: dict[str, Any], message: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(trigger_id=slack_requests.new_trigger_id(), view=view)
    assert refused.value.response["error"] == "invalid_arguments"
    assert message in str(refused.value.response["response_metadata"]["messages"])


async def test_a_trigger_opens_one_modal_once(client: AsyncWebClient) -> None:
    trigger = slack_requests.new_trigger_id()
    opened = await client.views_open(trigger_id=trigger, view=_modal(private_metadata="m"))
    assert opened["view"]["private_metadata"] == "m"
    assert opened["view"]["callback_id"] == "rollout_reason"
    with pytest.raises(SlackApiError) as again:
        await client.views_open(trigger_id=trigger, view=_modal())
    assert again.value.response["error"] == "exchanged_trigger_id"


CONFIRM = {
    "title": {"type": "plain_text", "text": "Advance?"},
    "text": {"type": "mrkdwn", "text": "Advance *phase-4*?"},
    "confirm": {"type": "plain_text", "text": "Advance"},
    "deny": {"type": "plain_text", "text": "Cancel"},
}


@pytest.mark.parametrize(
    ("why", "confirm", "message"),
    [
        ("text over 300", {**CONFIRM, "text": {"type": "mrkdwn", "text": "x" * 301}},
         "must be less than 301 characters [json-pointer:/blocks/0/elements/0/confirm/text/text]"),
        ("no deny", {k: v for k, v in CONFIRM.items() if k != "deny"},
         "must provide an object with a text type "
         "[json-pointer:/blocks/0/elements/0/confirm/deny]"),
        ("mrkdwn title", {**CONFIRM, "title": {"type": "mrkdwn", "text": "x"}},
         "must be a plain_text object [json-pointer:/blocks/0/elements/0/confirm/title/type]"),
        ("odd style", {**CONFIRM, "style": "blue"}, "must be one of primary, danger"),
    ],
)
async def test_confirmation_dialogs_slack_would_refuse_are_refused(
    client: AsyncWebClient, why: str, confirm: dict[str, Any], message: str
) -> None:
    def actions(dialog: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "actions", "elements": [{**_button("Advance"), "confirm": dialog}]}]

    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="#deployments", text="x", blocks=actions(confirm))
    assert message in str(refused.value.response["response_metadata"]["messages"])
    ok = await client.chat_postMessage(channel="#deployments", text="x", blocks=actions(CONFIRM))
    assert ok["ok"]


async def test_a_response_url_takes_five_posts_with_text_within_thirty_minutes(
    standin: SlackStandIn,
) -> None:
    webhook = AsyncWebhookClient(standin.response_url("click-1"))
    assert (await webhook.send(response_type="ephemeral")).body == "no_text"
    bad = await webhook.send(text="x", blocks=[{"type": "nope"}])
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")
    for i in range(5):
        assert (await webhook.send(text=f"answer {i}")).status_code == 200
    used = await webhook.send(text="a sixth")
    assert (used.status_code, used.body) == (404, "used_url")
    late = AsyncWebhookClient(standin.response_url("click-2"))
    standin.expire_response_url("click-2")
    assert (await late.send(text="too late")).body == "expired_url"
    unknown = AsyncWebhookClient(f"{standin.base_url}/response/never-handed-out")
    assert (await unknown.send(text="x")).body == "invalid_url"
    errors = [c.error for c in standin.calls if c.method.startswith("response_url:")]
    assert errors == ["no_text", "invalid_blocks", None, None, None, None, None, "used_url",
                      "expired_url", "invalid_url"]


async def test_an_alt_txt_over_1000_characters_is_refused(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.files_upload_v2(content=b"png", filename="c.png", alt_txt="x" * 1001)
    assert refused.value.response["error"] == "alt_txt_too_large"
    done = await client.files_upload_v2(content=b"png", filename="c.png", alt_txt="A chart.")
    assert done["file"]["alt_txt"] == "A chart."


# ------------------------------------------------------------------ auth and failures


async def test_bad_and_missing_tokens(standin: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as bad:
        await AsyncWebClient(base_url=standin.api_url, token="not-a-token").auth_test()
    assert bad.value.response.status_code == 200
    assert bad.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=standin.api_url).chat_postMessage(channel="C1", text="x")
    assert missing.value.response["error"] == "not_authed"

    strict = SlackStandIn(tokens=["xoxb-good"])
    await strict.start()
    try:
        good = AsyncWebClient(base_url=strict.api_url, token="xoxb-good")
        assert (await good.auth_test())["ok"] is True
        with pytest.raises(SlackApiError) as revoked:
            await AsyncWebClient(base_url=strict.api_url, token="xoxb-other").auth_test()
        assert revoked.value.response["error"] == "invalid_auth"
    finally:
        await strict.stop()
    assert [c.failed for c in standin.calls] == [True, True]


async def test_unknown_method(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("rollouts.frobnicate")
    assert err.value.response["error"] == "unknown_method"


async def test_429_surfaces_with_retry_after(standin: SlackStandIn, client: AsyncWebClient) -> None:
    standin.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="#deployments", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"

    ok = await client.chat_postMessage(channel="#deployments", text="x")  # only the next one
    assert ok["ok"] is True
    assert [(c.failed, c.status) for c in standin.calls_to("chat.postMessage")] == [
        (True, 429),
        (False, 200),
    ]


async def test_sdk_rate_limit_handler_honours_retry_after(standin: SlackStandIn) -> None:
    standin.fail_next("chat.postMessage", status=429, retry_after=0, times=2)
    client = AsyncWebClient(
        base_url=standin.api_url,
        token="xoxb-test",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    resp = await client.chat_postMessage(channel="#deployments", text="eventually")
    assert resp["ok"] is True
    assert [c.status for c in standin.calls_to("chat.postMessage")] == [429, 429, 200]


async def test_500_surfaces_as_api_error(standin: SlackStandIn, client: AsyncWebClient) -> None:
    standin.fail_next("chat.update", status=500)
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C0DEPLOY", ts="1.0", text="x")
    assert err.value.response.status_code == 500
    assert "Internal Server Error" in str(err.value.response.data)
    assert standin.calls_to("chat.update")[0].failed


async def test_error_mode_answers_ok_false(standin: SlackStandIn, client: AsyncWebClient) -> None:
    standin.fail_next("chat.postMessage", error="is_archived", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="#old", text="x")
        assert err.value.response.status_code == 200
        assert err.value.response["error"] == "is_archived"
    assert (await client.chat_postMessage(channel="#old", text="x"))["ok"] is True


async def test_down_and_delay(standin: SlackStandIn, client: AsyncWebClient) -> None:
    standin.set_down(True)
    with pytest.raises(SlackApiError) as err:
        await client.auth_test()
    assert err.value.response.status_code == 503
    standin.set_down(False)

    standin.delay("auth.test", 0.3)
    started = asyncio.get_running_loop().time()
    await client.auth_test()
    assert asyncio.get_running_loop().time() - started >= 0.3


async def test_wait_for_waits_and_explains_timeouts(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    async def post_later() -> None:
        await asyncio.sleep(0.1)
        await client.chat_postMessage(channel="#deployments", text="rolled back")

    task = asyncio.create_task(post_later())
    calls = await standin.wait_for("chat.postMessage", lambda c: "rolled" in c.params["text"])
    await task
    assert calls[0].params["text"] == "rolled back"

    with pytest.raises(TimeoutError) as err:
        await standin.wait_for("chat.update", timeout=0.1)
    assert "chat.update" in str(err.value) and "chat.postMessage" in str(err.value)


async def test_response_url_posts_are_recorded(standin: SlackStandIn) -> None:
    webhook = AsyncWebhookClient(standin.response_url("cmd-1"))
    resp = await webhook.send(text="Rollout paused", response_type="ephemeral")
    assert resp.status_code == 200
    (call,) = await standin.wait_for("response_url:cmd-1")
    assert call.params == {"text": "Rollout paused", "response_type": "ephemeral"}


# ---------------------------------------------------------------------------- files


async def test_files_upload_v2_goes_through_the_three_steps(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    png = b"\x89PNG\r\n\x1a\nfake chart bytes"
    resp = await client.files_upload_v2(
        channel="C0DEPLOY", content=png, filename="x.png", initial_comment="error rate"
    )

    assert [c.method for c in standin.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    file_id = resp["file"]["id"]
    assert standin.uploaded_files[file_id] == png
    assert resp["file"]["name"] == "x.png" and resp["file"]["mimetype"] == "image/png"
    get_url, _, complete = standin.calls
    assert get_url.params["length"] == str(len(png))
    assert complete.params["files"] == [{"id": file_id, "title": "x.png"}]
    assert complete.params["channel_id"] == "C0DEPLOY"

    history = await client.conversations_history(channel="C0DEPLOY")
    shared = history["messages"][0]
    assert shared["text"] == "error rate" and shared["files"][0]["id"] == file_id


async def test_failed_upload_step_surfaces(standin: SlackStandIn, client: AsyncWebClient) -> None:
    standin.fail_next("upload", status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await client.files_upload_v2(channel="C0DEPLOY", content=b"x", filename="x.txt")
    assert not standin.calls_to("files.completeUploadExternal")


# ---------------------------------------------------------------------- Socket Mode


async def test_socket_mode_envelope_is_delivered_and_acked(standin: SlackStandIn) -> None:
    web_client = AsyncWebClient(base_url=standin.api_url)
    socket_client = SocketModeClient(app_token="xapp-1-test", web_client=web_client)
    messages: list[dict[str, object]] = []
    requests: list[SocketModeRequest] = []

    async def on_message(_: object, message: dict[str, object], raw: str | None) -> None:
        messages.append(message)

    async def on_request(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        requests.append(req)
        ack = SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "Starting"})
        await client.send_socket_mode_response(ack)

    socket_client.message_listeners.append(on_message)
    socket_client.socket_mode_request_listeners.append(on_request)
    await socket_client.connect()
    try:
        await standin.wait_socket_connected(timeout=5)
        payload = slash_payload("start checkout v42")
        ack = await standin.send_envelope("slash_commands", payload, timeout=5)
    finally:
        await socket_client.close()

    (req,) = requests
    assert req.type == "slash_commands" and req.payload["text"] == "start checkout v42"
    assert req.accepts_response_payload is True
    assert ack == {"envelope_id": req.envelope_id, "payload": {"text": "Starting"}}
    assert messages[0]["type"] == "hello"
    (opened,) = standin.calls_to("apps.connections.open")
    assert opened.headers["Authorization"] == "Bearer xapp-1-test"


async def test_socket_mode_needs_an_app_token(standin: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=standin.api_url).apps_connections_open(app_token="xoxb-1")
    assert err.value.response["error"] == "not_allowed_token_type"


async def test_send_envelope_times_out_without_ack(standin: SlackStandIn) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(standin.base_url + "/socket") as ws,
    ):
        hello = await ws.receive_json()
        assert hello["type"] == "hello" and hello["connection_info"]["app_id"]
        with pytest.raises(TimeoutError, match="no ack"):
            await standin.send_envelope("events_api", {"event": {}}, timeout=0.2)
        envelope = await ws.receive_json()
        assert envelope["type"] == "events_api" and envelope["retry_attempt"] == 0


# -------------------------------------------------------------- request helpers


def test_slash_body_and_signature_are_what_slack_sends() -> None:
    body = slash_body("status", response_url="http://x/response/1")
    form = {k: v[0] for k, v in parse_qs(body).items()}
    assert form["command"] == "/rollout" and form["text"] == "status"
    assert form["channel_id"] == "C0DEPLOY" and form["response_url"] == "http://x/response/1"
    assert slash_payload("a")["trigger_id"] != slash_payload("a")["trigger_id"]

    headers = signed_headers(body, SECRET, retry_num=1)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert headers["X-Slack-Retry-Num"] == "1"
    assert not SignatureVerifier("other").is_valid_request(body, headers)


async def test_real_bolt_app_accepts_helpers_and_talks_to_the_standin(
    standin: SlackStandIn,
) -> None:
    """End to end: signed requests into a real Bolt app whose client points at the stand-in."""
    bolt = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(base_url=standin.api_url, token="xoxb-test"),
    )

    @bolt.command("/rollout")
    async def rollout(ack: Any, respond: Any, say: Any, command: dict[str, str]) -> None:
        await ack(text=f"Got {command['text']}")
        await say(f"<@{command['user_id']}> started a rollout")
        await respond("done")

    @bolt.action("pause")
    async def pause(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        container = body["container"]
        await client.chat_update(
            channel=container["channel_id"], ts=container["message_ts"], text="paused"
        )

    runner = web.AppRunner(bolt.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        async with aiohttp.ClientSession() as session:
            body = slash_body("start checkout", response_url=standin.response_url("c1"))
            status, answer = await post_signed(session, url, body, SECRET)
            assert (status, answer) == (200, "Got start checkout")  # Bolt acks text as text/plain
            posted = await standin.wait_for("chat.postMessage")
            await standin.wait_for("response_url:c1")

            ts = standin.seed_message("C0DEPLOY", "stage 1")
            click = block_action_body("pause", "r-1", channel_id="C0DEPLOY", message_ts=ts)
            status, _ = await post_signed(session, url, click, SECRET)
            assert status == 200
            (update,) = await standin.wait_for("chat.update")
            assert update.params["ts"] == ts and not update.failed

            status, _ = await post_signed(session, url, body, "wrong-secret")
            assert status == 401
    finally:
        await runner.cleanup()
    assert posted[0].params["text"] == "<@U0CORA> started a rollout"


# --- fault modes (5xx, 429 with Retry-After, an answer lost after posting) and reads back --

METADATA = {"event_type": "rollout_bot_outbox", "event_payload": {"outbox_id": 7}}


async def outcome(client: AsyncWebClient, text: str) -> tuple[str, Any]:
    try:
        response = await client.chat_postMessage(channel="#deployments", text=text)
    except SlackApiError as exc:
        return "api_error", (exc.response.status_code, exc.response.headers, exc.response.data)
    except aiohttp.ClientError as exc:
        return "disconnected", exc
    return "ok", response


async def test_faults_answer_5xx_429_bursts_and_lose_answers_after_posting(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    faults = standin.inject_faults(
        SlackFaults(server_error_rate=0.2, burst_rate=0.05, lost_answer_rate=0.1, seed=1)
    )
    assert faults is not None
    seen: dict[str, int] = {}
    for i in range(200):
        kind, detail = await outcome(client, f"message {i}")
        if kind == "api_error":
            status, headers, body = detail
            kind = str(status)
            if status == 429:
                assert headers["retry-after"] == "1"  # as Slack sends it
                assert body == {"ok": False, "error": "ratelimited"}
            else:
                assert status in (500, 502, 503)
        seen[kind] = seen.get(kind, 0) + 1
    assert seen.get("disconnected", 0) == faults.answers_lost > 0
    assert sum(seen.get(s, 0) for s in ("500", "502", "503")) == faults.answered_5xx > 0
    assert seen.get("429", 0) == faults.answered_429 > 0
    assert 3 * (faults.bursts - 1) < faults.answered_429 <= 3 * faults.bursts  # bursts of 3
    # What was posted is what Slack said ok to, and what it posted without answering.
    texts = [m["text"] for m in standin.messages("#deployments")]
    assert len(texts) == seen["ok"] + seen["disconnected"]
    lost = [c.params["text"] for c in standin.calls_to("chat.postMessage") if c.answer_lost]
    assert set(lost) <= set(texts) and len(lost) == faults.answers_lost
    standin.inject_faults(None)
    assert (await outcome(client, "after"))[0] == "ok"


async def test_faults_leave_other_methods_alone(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.inject_faults(SlackFaults(server_error_rate=1.0))
    assert (await client.auth_test())["ok"]
    assert (await outcome(client, "refused"))[0] == "api_error"


async def test_a_lost_answer_leaves_the_message_posted(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.lose_next_answer("chat.postMessage")
    assert (await outcome(client, "posted, unheard"))[0] == "disconnected"
    assert (await outcome(client, "heard"))[0] == "ok"
    assert [m["text"] for m in standin.messages("#deployments")] == ["posted, unheard", "heard"]


async def test_history_shows_metadata_only_when_asked(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="#deployments", text="hi", metadata=METADATA)
    plain = await client.conversations_history(channel=posted["channel"])
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(
        channel=posted["channel"], include_all_metadata=True
    )
    assert full["messages"][0]["metadata"] == METADATA
    reply = await client.chat_postMessage(
        channel=posted["channel"], thread_ts=posted["ts"], text="in thread", metadata=METADATA
    )
    replies = await client.conversations_replies(
        channel=posted["channel"], ts=posted["ts"], include_all_metadata=True
    )
    assert [(m["ts"], m.get("metadata")) for m in replies["messages"]] == [
        (posted["ts"], METADATA), (reply["ts"], METADATA)
    ]


async def test_metadata_slack_would_refuse_is_refused(client: AsyncWebClient) -> None:
    bad_ones: list[dict[str, Any]] = [
        {"event_type": "x"}, {"event_payload": {}}, {"event_type": "", "event_payload": {}}
    ]
    for bad in bad_ones:
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="#deployments", text="hi", metadata=bad)
        assert refused.value.response["error"] == "invalid_metadata_format"


async def test_reads_take_the_dm_id_not_the_user_id(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="U0FORGE", text="a page")
    with pytest.raises(SlackApiError) as refused:
        await client.conversations_history(channel="U0FORGE")
    assert refused.value.response["error"] == "channel_not_found"
    opened = await client.conversations_open(users="U0FORGE")
    assert opened["channel"]["id"] == posted["channel"]
    history = await client.conversations_history(channel=opened["channel"]["id"])
    assert [m["text"] for m in history["messages"]] == ["a page"]


async def test_history_and_replies_come_in_pages(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="#deployments", text="0")
    channel = parent["channel"]
    for i in range(1, 6):
        await client.chat_postMessage(channel=channel, text=str(i))
        await client.chat_postMessage(channel=channel, thread_ts=parent["ts"], text=f"r{i}")

    async def read_all(method: Any, **args: Any) -> list[str]:
        texts, cursor = [], None
        while True:
            page = await method(channel=channel, limit=2, cursor=cursor, **args)
            assert len(page["messages"]) <= 2
            texts += [m["text"] for m in page["messages"]]
            cursor = page["response_metadata"]["next_cursor"]
            assert page["has_more"] == bool(cursor)
            if not cursor:
                return texts

    assert await read_all(client.conversations_history) == ["5", "4", "3", "2", "1", "0"]
    assert await read_all(client.conversations_replies, ts=parent["ts"]) == [
        "0", "r1", "r2", "r3", "r4", "r5"
    ]


async def test_a_burst_of_429s_can_be_started_and_ends_by_itself(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    faults = standin.inject_faults(
        SlackFaults(server_error_rate=0, burst_rate=0, lost_answer_rate=0, burst_length=3)
    )
    assert faults is not None
    faults.start_burst("chat.postMessage")
    kinds = [(await outcome(client, f"m{i}"))[0] for i in range(5)]
    assert kinds == ["api_error"] * 3 + ["ok"] * 2
    assert (faults.bursts, faults.answered_429) == (1, 3)


async def test_a_lost_answer_can_be_meant_for_one_channel(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.lose_next_answer("chat.postMessage", channel="U0FORGE")
    assert (await outcome(client, "in the channel"))[0] == "ok"
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel="U0FORGE", text="a page")
    assert [m["text"] for m in standin.messages("U0FORGE")] == ["a page"]
