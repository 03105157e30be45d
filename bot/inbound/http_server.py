"""The HTTP surface: Slack at /slack/events, the JSON API, /healthz and /metrics."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.domain.exposure import evaluate
from bot.domain.policy import EmergencyFreeze
from bot.inbound.json_body import decode
from bot.inbound.payloads import payload_problem
from bot.inbound.refusal_log import RefusalLog
from bot.metrics import Metrics
from bot.services.flags_file import read_document
from bot.services.rollouts import (
    RolloutService,
    holds_json,
    pending_json,
    waiting_json,
)
from storage.db import ping
from storage.repository import Repository

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_web_app(
    *,
    bolt: AsyncApp | None,
    signing_secret: str,
    service: RolloutService,
    metrics: Metrics,
    engine: Any,
    replica: Callable[[], dict[str, object]] | None = None,
    refusals: RefusalLog | None = None,
    alertmanager: Handler | None = None,
    commands: Callable[[Mapping[str, str]], Awaitable[bytes | None]] | None = None,
) -> web.Application:
    """`commands`: answers slash commands that only read, ahead of Bolt (None for those it
    leaves to Bolt; `bot.inbound.rollout_listeners.at_once_answers`)."""
    app = web.Application(client_max_size=MAX_BODY)
    # No secret (Socket Mode needs none): no signature can be checked, so nothing over
    # HTTP is taken for Slack.
    verifier = SignatureVerifier(signing_secret) if signing_secret else None
    refused = refusals or RefusalLog()

    async def slack_events(request: web.Request) -> web.Response:
        if bolt is None or verifier is None:
            return _error(404, "Slack over HTTP is off: this bot runs in Socket Mode")
        try:  # Slack sends UTF-8 whatever the Content-Type's charset claims
            body = (await request.read()).decode("utf-8")
        except UnicodeDecodeError as exc:
            refused.refused(f"a Slack request whose body is not UTF-8: {exc}", request.remote)
            return _error(400, "the body is not UTF-8 text")
        if not _signature_ok(verifier, body, request):
            return web.json_response({"error": "invalid request"}, status=401)
        data, problem = _parsed(body, request.content_type)
        if problem:
            refused.refused(f"a signed Slack request: {problem}", request.remote)
            return _error(400, problem)
        if commands is not None and data.get("command") is not None and "payload" not in data:
            answer = await commands(data)  # a command that only reads: answered here
            if answer is not None:  # as Bolt's adapter sends an ack's JSON
                return web.Response(body=answer, content_type="application/json")
        bolt_request = AsyncBoltRequest(
            body=body,
            query=request.query_string,
            headers={k: request.headers.getall(k) for k in request.headers},
        )
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    async def list_rollouts(request: web.Request) -> web.Response:
        statuses = await service.statuses()
        freeze = await service.emergency()
        ends = await service.soak_ends(statuses)
        return web.json_response(
            [_rollout_json(service, n, statuses[n], freeze, ends[n]) for n in service.specs]
        )

    async def one_rollout(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in service.specs:
            return _error(404, f"no rollout named {name!r}; known: {', '.join(service.specs)}")
        statuses = await service.statuses()
        ends = await service.soak_ends(statuses)
        data = _rollout_json(service, name, statuses[name], await service.emergency(), ends[name])
        data["events"] = [
            {**e, "at": e["at"].isoformat()} for e in await service.history(name, limit=50)
        ]
        async with service.sessions() as session:
            views = await service.observations(session, service.specs[name], service.clock.now())
        data["gate_states"] = [
            {
                "gate": v.name,
                "outcome": v.outcome.value,
                "since": v.since.isoformat(),
                "value": v.value,
                "threshold": v.threshold,
                "window_seconds": v.window.total_seconds(),
                "query": v.query,
                "detail": v.detail,
            }
            for v in views.values()
        ]
        return web.json_response(data)

    async def flags(request: web.Request) -> web.Response:
        return web.json_response(await read_document(service.sessions, service.specs))

    async def evaluate_flag(request: web.Request) -> web.Response:
        flag, key = request.match_info["flag"], request.query.get("key", "")
        if not key:
            return _error(400, "pass the key to evaluate, e.g. ?key=user-42")
        document = await read_document(service.sessions, service.specs)
        answer = evaluate(document, flag, key)
        if answer is None:
            known = ", ".join(sorted(document["flags"])) or "none"
            return _error(404, f"no flag named {flag!r}; known: {known}")
        return web.json_response(answer)

    async def healthz(request: web.Request) -> web.Response:
        try:
            await ping(engine)
        except Exception as exc:
            return web.json_response({"ok": False, "database": str(exc)[:200]}, status=503)
        answer: dict[str, object] = {"ok": True, "database": "ok"}
        if replica is not None:  # which replica answered, and the work it holds now
            answer["replica"] = replica()
        return web.json_response(answer)

    async def metrics_page(request: web.Request) -> web.Response:
        async with service.sessions() as session:
            metrics.outbox_depth.set(await Repository(session).outbox_depth())
        for refresh in metrics.before_scrape:
            await refresh()
        return web.Response(
            body=generate_latest(metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    app.router.add_post("/slack/events", slack_events)
    if alertmanager is not None:
        app.router.add_post("/alertmanager", alertmanager)
    app.router.add_get("/api/rollouts", list_rollouts)
    app.router.add_get("/api/rollouts/{name}", one_rollout)
    app.router.add_get("/flags", flags)
    app.router.add_get("/flags/{flag}/evaluate", evaluate_flag)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    return app


def _signature_ok(verifier: SignatureVerifier, body: str, request: web.Request) -> bool:
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp.isdigit() or not signature:
        return False
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = verifier.generate_signature(timestamp=timestamp, body=body) or ""
    return hmac.compare_digest(expected, signature)


def _parsed(body: str, content_type: str) -> tuple[Any, str | None]:
    """A signed body as Slack data, and why it cannot be a Slack request (None when it
    can; the data is then a dict)."""
    if not body:
        return None, "empty body"
    try:
        if content_type == "application/json" or body.startswith("{"):
            data = decode(body)
        else:
            form = dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))
            data = decode(form["payload"]) if "payload" in form else form
    except (ValueError, KeyError) as exc:  # NotJson too: deep nesting, huge numbers
        return None, f"the body is neither a Slack form nor JSON: {exc}"
    return data, payload_problem(data)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _rollout_json(
    service: RolloutService,
    name: str,
    status: Any,
    freeze: EmergencyFreeze | None,
    soak_ends: datetime | None,
) -> dict[str, Any]:
    spec = service.specs[name]
    stage = status.stage(spec.plan)
    frozen = spec.policy.frozen(service.clock.now(), freeze)
    return {
        "name": name,
        "flag": spec.flag,
        "plan": spec.plan.name,
        "state": status.state.value,
        "percent": status.percent,
        # a shadow run: `percent` is where it would be; the service is told `delivered_percent`
        "shadow": status.shadow is not None,
        "delivered_percent": status.delivered,
        "version": status.version,
        "stage": None if status.stage_index is None else status.stage_index + 1,
        "stages": list(spec.plan.percents),
        "stage_started_at": status.stage_started_at.isoformat()
        if status.stage_started_at
        else None,
        "soak_seconds": int(stage.soak.total_seconds()) if stage else None,
        # when the stage will have soaked green, as the bot judges it (None: a gate is
        # not green, and the soak counts from when it is)
        "soak_ends_at": soak_ends.isoformat() if soak_ends else None,
        "hold_reason": status.hold_reason,
        "held_by": holds_json(status.held_by),
        "pending": pending_json(status.pending),
        "waiting": waiting_json(status.waiting),
        "frozen": None
        if frozen is None
        else {
            "reason": frozen.reason,
            "until": frozen.until.isoformat() if frozen.until else None,
            "emergency": frozen.emergency,
            "by": frozen.by,
        },
        "advance": spec.advance.value,
        "gates": list(spec.gates),
    }
