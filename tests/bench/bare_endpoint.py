"""The floor for a signed Slack request: an aiohttp endpoint that only verifies the
signature (`python -m tests.bench.bare_endpoint PORT SECRET`), as its own process."""

from __future__ import annotations

import sys

from aiohttp import web
from slack_sdk.signature import SignatureVerifier


def build(secret: str) -> web.Application:
    verifier = SignatureVerifier(secret)

    async def events(request: web.Request) -> web.Response:
        body = (await request.read()).decode("utf-8")
        if not verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
        ):
            return web.json_response({"error": "invalid request"}, status=401)
        return web.json_response({"response_type": "ephemeral", "text": "ok"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    port, secret = int(sys.argv[1]), sys.argv[2]
    web.run_app(build(secret), host="127.0.0.1", port=port, access_log=None, print=None)
