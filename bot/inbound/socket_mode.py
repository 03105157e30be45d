"""Socket Mode: Slack's envelopes, their payloads checked (`bot.inbound.payloads`) before
Bolt reads them, as over HTTP. A malformed one is acknowledged empty (Slack would only
send it again) and noted once in the log (`bot.inbound.refusal_log`)."""

from __future__ import annotations

from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.inbound.payloads import payload_problem
from bot.inbound.refusal_log import RefusalLog

CHECKED = ("slash_commands", "interactive", "events_api")


class CheckedSocketModeHandler(AsyncSocketModeHandler):
    def __init__(self, *args: Any, refusals: RefusalLog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusals = refusals

    async def handle(self, socket: Any, req: SocketModeRequest) -> None:
        if req.type in CHECKED:
            problem = payload_problem(req.payload)
            if problem is not None:
                self.refusals.refused(f"Socket Mode {req.type}: {problem}", "Socket Mode")
                await socket.send_socket_mode_response(
                    SocketModeResponse(envelope_id=req.envelope_id)
                )
                return
        await super().handle(socket, req)
