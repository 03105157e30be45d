"""Webhooks: a rollout's flag POSTed to its `webhook:` after every decision. Delivery is a
timer row (`webhook:NAME`), so it survives a restart; it is retried with backoff, and a
rollout whose webhook keeps failing is held (paused with a reason, said in its thread).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.exposure import rollout_entry
from bot.domain.rollout import Decision, Pause, RolloutSpec, State
from bot.render import blocks
from bot.services.rollouts import BOT, RolloutService, status_of
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

WEBHOOK = "webhook"


class Webhooks:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        specs: Mapping[str, RolloutSpec],
        urls: Mapping[str, str],
        clock: Clock,
        channel: str,
        *,
        attempts: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.specs = specs
        self.urls = urls
        self.clock = clock
        self.channel = channel
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.service: RolloutService | None = None  # `bind` sets it, once, in the wiring
        self._http: aiohttp.ClientSession | None = None

    def bind(self, service: RolloutService) -> None:
        """The rollout service that holds a rollout whose webhook keeps failing."""
        assert self.service is None, "bound twice"
        self.service = service

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def on_decision(
        self, session: AsyncSession, spec: RolloutSpec, decision: Decision, now: datetime
    ) -> None:
        """Every decision of a rollout with a webhook queues a delivery of its new state."""
        if spec.name not in self.urls:
            return
        repo = Repository(session)
        await repo.set_timer(f"{WEBHOOK}:{spec.name}", WEBHOOK, now, {"rollout": spec.name})

    async def deliver(self, timer: DueTimer) -> None:
        name = timer.payload.get("rollout", "")
        spec, url = self.specs.get(name), self.urls.get(name)
        if spec is None or url is None:
            return
        async with self.sessions() as session:
            row = await Repository(session).rollout(name)
        if row is None:
            return
        body = {"flag": spec.flag, **rollout_entry(spec, status_of(row))}
        body["updated_at"] = row.updated_at.isoformat()
        error = await self._post(url, body)
        if not error:
            return  # the scheduler finishes the timer
        attempt = int(timer.payload.get("attempt", 0)) + 1
        delay = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        log.warning("webhook for %s failed (attempt %d): %s", name, attempt, error)
        if attempt == self.attempts:
            await self._hold(spec, url, error, attempt)
        payload = {"rollout": name, "attempt": attempt, "error": error}
        async with self.sessions() as session, session.begin():
            due = self.clock.now() + timedelta(seconds=delay)
            await Repository(session).set_timer(timer.key, WEBHOOK, due, payload)

    async def _post(self, url: str, body: dict[str, Any]) -> str:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._http.post(url, json=body) as response:
                if 200 <= response.status < 300:
                    return ""
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    async def _hold(self, spec: RolloutSpec, url: str, error: str, attempts: int) -> None:
        """Pause a running rollout: the service may not know its percentage."""
        assert self.service is not None
        reason = f"webhook {url} failing ({error}) after {attempts} attempts"
        async with self.sessions() as session:
            row = await Repository(session).rollout(spec.name)
        if row is not None and row.state == State.PROGRESSING.value:
            outcome = await self.service.act(spec.name, Pause(reason), BOT)
            if outcome.ok:
                return
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            text = f"⚠️ {spec.name}: {reason}. The service may not know its percentage."
            message = {"text": text, "blocks": [blocks.section(text)]}
            Repository(session).enqueue(
                self.channel, "thread_reply", message, now, rollout=spec.name
            )
        self.service.notify()
