"""One loop that runs due timers (soak ends, gate evaluations, checkpoints, pages).

Timers are rows with a due time. A loop claims a due row by leasing it and moving its
token on; two loops, or a restarted bot, never run the same claim twice. A handler that
writes should finish its timer in its own transaction (`Repository.finish_timer(key,
token)`), so its work and the timer's end commit together; the loop finishes it afterwards
too, which is then a no-op. A bot killed in the middle of a handler leaves its claim
leased: the lease is short (30 s) so a gate tick or a page runs again soon after a crash,
and longer only for handlers that render a lot (`on(kind, handler, lease=…)`). A handler
that fails leaves the timer leased; it runs again once the lease ends.

On PostgreSQL, with several replicas, a claim is also held by the replica's advisory lock
(`storage.claims.Claims`): a replica killed in the middle of a handler loses its lock with
its connection, and another replica takes the timer over on its next poll, lease or not.

Claimed timers run concurrently, up to `concurrency` at once, so one slow handler (a gate
tick waiting on a slow Prometheus) does not hold back the others (an escalation step).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.services.waiting import wait_until_due
from storage.claims import TIMER, Claims, claiming, item_name
from storage.repository import DueTimer, Repository

log = logging.getLogger(__name__)

TimerHandler = Callable[[DueTimer], Awaitable[None]]


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        poll_seconds: float = 1.0,
        lease: timedelta = timedelta(seconds=30),
        concurrency: int = 16,
        claims: Claims | None = None,
    ) -> None:
        self.sessions = sessions
        self.claims = claims  # None: claims are decided by their lease alone
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.handlers: dict[str, TimerHandler] = {}
        self.leases: dict[str, timedelta] = {}
        self.after: dict[str, tuple[str, ...]] = {}  # kind → the kinds that run before it
        self._slots = asyncio.Semaphore(concurrency)
        self.kick = asyncio.Event()
        self.stopping = False  # set by `drain`: finish the timers in flight, then return

    def drain(self) -> None:
        """Ask `run` to return once the timers it claimed have run."""
        self.stopping = True
        self.kick.set()

    def on(
        self,
        kind: str,
        handler: TimerHandler,
        *,
        lease: timedelta | None = None,
        after: Sequence[str] = (),
    ) -> None:
        """Run `handler` for due timers of `kind`; `after`: not while a timer of one of
        these kinds is due (a checkpoint describes the gates measured at its moment)."""
        self.handlers[kind] = handler
        if lease is not None:
            self.leases[kind] = lease
        if after:
            self.after[kind] = tuple(after)

    async def run(self) -> None:
        while not self.stopping:
            try:
                ran = await self.run_due()
            except Exception:
                log.exception("scheduler pass failed; trying again")
                ran = 0
            if not ran and not self.stopping:
                try:
                    async with self.sessions() as session:
                        next_due = await Repository(session).next_timer_due()
                except Exception:  # e.g. the database locked past its busy timeout
                    log.exception("scheduler could not read the next due time; polling")
                    next_due = None
                if next_due is not None and next_due <= self.clock.now():
                    # Due but not claimable: waiting for a kind it runs after, which another
                    # replica is running. Look again after a poll, not in a busy loop.
                    next_due = None
                await wait_until_due(self.clock, next_due, self.kick, self.poll_seconds)

    async def run_due(self) -> int:
        """Run every timer due now, once. Returns how many ran."""
        # A claim that does not commit holds nothing (`claiming` lets it go).
        async with claiming(self.claims), self.sessions() as session, session.begin():
            due = await Repository(session).claim_due_timers(
                self.clock.now(), self.lease, self.leases, claims=self.claims, after=self.after
            )
        await asyncio.gather(*(self._run_in_slot(timer) for timer in due))
        return len(due)

    async def _release(self, timer: DueTimer) -> None:
        async with self.sessions() as session, session.begin():
            await Repository(session).release_timer(timer.key, timer.token)

    async def _failed(self, timer: DueTimer) -> None:
        try:
            async with self.sessions() as session, session.begin():
                await Repository(session).timer_failed(timer.key, timer.token)
        except Exception:  # its lease still spaces the retries; only a takeover is sooner
            log.exception("could not record that timer %s failed", timer.key)

    async def _let_go(self, timer: DueTimer) -> None:
        if self.claims is not None:
            await self.claims.release(item_name(TIMER, timer.key))

    async def _run_in_slot(self, timer: DueTimer) -> None:
        try:
            async with self._slots:
                await self._run(timer)
        finally:  # finished, failed or given back: another replica may claim it now
            await asyncio.shield(self._let_go(timer))

    async def _run(self, timer: DueTimer) -> None:
        handler = self.handlers.get(timer.kind)
        if handler is None:
            log.error("no handler for timer kind %r (%s); dropping it", timer.kind, timer.key)
        else:
            try:
                await handler(timer)
            except asyncio.CancelledError:
                # The bot is stopping: release the claim so the next bot runs it at once
                # instead of waiting out the lease (a gate tick must not miss its window).
                await asyncio.shield(self._release(timer))
                raise
            except Exception:
                log.exception("timer %s failed; it runs again after its lease", timer.key)
                if self.claims is not None:
                    await self._failed(timer)
                return
        async with self.sessions() as session, session.begin():
            await Repository(session).finish_timer(timer.key, timer.token)
