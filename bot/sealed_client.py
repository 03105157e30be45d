"""The bot's Slack Web API client: every message and view it sends has its button values
and modal metadata sealed (`bot.render.seal`), whichever part of the bot sends it.

Renderers stay pure and write plain values; sealing them here, at the one way out, means no
message can go out with a button that would not open again.
"""

from __future__ import annotations

import json as jsonlib
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.render.seal import ButtonSeal

SEALED_FIELDS = ("blocks", "view", "attachments")


class SealedWebClient(AsyncWebClient):
    def __init__(self, *args: Any, seal: ButtonSeal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seal = seal

    async def api_call(
        self,
        api_method: str,
        *,
        json: dict[str, Any] | None = None,
        data: Any = None,
        **kwargs: Any,
    ) -> AsyncSlackResponse:
        if json is not None:
            json = self._sealed(json)
        if isinstance(data, dict):
            data = self._sealed(data)
        return await super().api_call(api_method, json=json, data=data, **kwargs)

    def _sealed(self, fields: dict[str, Any]) -> dict[str, Any]:
        out = dict(fields)
        for name in SEALED_FIELDS:
            value = out.get(name)
            if isinstance(value, str) and value.startswith(("[", "{")):  # sent as JSON text
                try:
                    out[name] = jsonlib.dumps(self.seal.seal_surface(jsonlib.loads(value)))
                except ValueError:
                    continue
            elif isinstance(value, list | dict):
                out[name] = self.seal.seal_surface(value)
        return out
