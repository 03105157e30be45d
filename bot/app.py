"""Wiring: one object that builds the bot from a config and settings, starts it and stops it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, time, timedelta

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alertmanager_api import AlertmanagerApi
from bot.clock import Clock, SystemClock
from bot.config import Config, daily_summary_time
from bot.domain.alerts import HoldPolicy
from bot.domain.rollout import RolloutSpec
from bot.inbound.alertmanager_endpoint import EndpointAuth, alertmanager_handler
from bot.inbound.app_home_listener import AppHome
from bot.inbound.dashboard_routes import add_dashboard
from bot.inbound.http_server import build_web_app
from bot.inbound.incident_listeners import register_incident_actions
from bot.inbound.refusal_log import RefusalLog, ServerLogger
from bot.inbound.rehearsal_listener import register_rehearsal_actions
from bot.inbound.rollout_listeners import at_once_answers, build_app
from bot.inbound.socket_mode import CheckedSocketModeHandler
from bot.metrics import Metrics
from bot.prometheus import MetricsSource, PrometheusSource, SeriesSource
from bot.render.seal import ButtonSeal
from bot.sealed_client import SealedWebClient
from bot.services import incident_outbox, responses
from bot.services.alerts import AlertIntake
from bot.services.checkpoints import CHECKPOINT, DAILY, CheckpointService
from bot.services.flags_file import FlagsFile, read_document, read_flagd_document
from bot.services.gates import GATES, GateService
from bot.services.housekeeping import HOUSEKEEPING, Housekeeping
from bot.services.incidents import TIMER_KIND, IncidentService
from bot.services.outbox import OutboxWorker
from bot.services.overview_reader import (
    OverviewSource,
    gate_states,
    open_incidents,
    rollout_threads,
)
from bot.services.people import GroupMembers, People
from bot.services.rehearsals import rehearsals_for
from bot.services.rollout_metrics import RolloutCollector
from bot.services.rollouts import EXPIRY, SOAK, RolloutService
from bot.services.scheduler import Scheduler
from bot.services.silences import Silences
from bot.services.status_snapshot import StatusSnapshot
from bot.services.user_names import UserNames
from bot.services.webhooks import WEBHOOK, Webhooks
from bot.settings import Settings
from bot.standin.web_api import SlackStandIn
from commands.handle import Handler
from storage.change_stamp import stamp_reader
from storage.claims import OUTBOX, TIMER, Claims, default_replica_id
from storage.db import create_engine, default_url, migrate, reader, sessionmaker
from storage.sole_process import SoleProcess, sqlite_file

log = logging.getLogger(__name__)

LOCAL_TOKEN = "xoxb-local-stand-in"
LOCAL_SIGNING_SECRET = "local-signing-secret"


DRAIN_SECONDS = 10.0  # at stop, how long deliveries and timers in flight may finish

# Timer kinds that wait while one of these kinds is due, so that what they decide or say
# holds for the moment they run at: a soak's end decides on the gates measured then; a
# summary describes the gates measured, the soaks ended and the pages sent; the day's
# summary comes after its threads' checkpoints. Pages never wait for the gates.
_SUMMARIES_AFTER = (GATES, SOAK, EXPIRY, TIMER_KIND)
RUNS_AFTER: dict[str, tuple[str, ...]] = {
    SOAK: (GATES,),
    CHECKPOINT: _SUMMARIES_AFTER,
    DAILY: (*_SUMMARIES_AFTER, CHECKPOINT),
}


class RolloutBot:
    """The whole bot: database, Slack listeners, outbox worker and HTTP server."""

    def __init__(
        self,
        config: Config,
        settings: Settings,
        clock: Clock | None = None,
        *,
        metrics_source: MetricsSource | None = None,
        poll_seconds: float = 1.0,
        measure_at_clock: bool = False,
    ) -> None:
        """`measure_at_clock`: gates ask Prometheus for the value at `clock`'s now (a
        stepped clock over a Prometheus holding that period's history)."""
        self.config = config
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics_source = metrics_source  # None: Prometheus at the configured URL
        self.measure_at_clock = measure_at_clock
        # The longest the background loops wait, in real time, before looking again; the
        # demo's compressed time needs them much shorter than a real bot does.
        self.poll_seconds = poll_seconds
        self.metrics = Metrics()
        self.standin: SlackStandIn | None = None
        self.sole: SoleProcess | None = None  # the lock on a SQLite file, while serving
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._socket: CheckedSocketModeHandler | None = None
        self.refusals = RefusalLog()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def signing_secret(self) -> str:
        if self.settings.slack_signing_secret:
            return self.settings.slack_signing_secret
        return LOCAL_SIGNING_SECRET if self.settings.embedded_slack else ""

    @property
    def seal_secret(self) -> tuple[str, str]:
        """(what it is, the secret) button values and modal metadata are sealed with: the
        signing secret; in Socket Mode without one, the app-level token (which Socket Mode
        always has); failing both, the bot token."""
        if self.signing_secret:
            return "the signing secret", self.signing_secret
        if self.settings.slack_app_token:
            return "the app-level token (SLACK_APP_TOKEN)", self.settings.slack_app_token
        return "the bot token", self.settings.slack_bot_token or LOCAL_TOKEN

    async def start(self) -> None:
        settings = self.settings
        problem = settings.problem()
        if problem:
            raise ValueError(problem)
        api_url, token = settings.slack_api_url, settings.slack_bot_token
        if settings.embedded_slack:
            self.standin = SlackStandIn()
            await self.standin.start()
            api_url, token = self.standin.api_url, LOCAL_TOKEN
            log.warning(
                "No SLACK_BOT_TOKEN: Slack is the embedded local stand-in at %s "
                "(signing secret %r)",
                api_url,
                self.signing_secret,
            )
        what, secret = self.seal_secret
        self.seal = ButtonSeal.from_secret(secret)
        log.info("Button values are sealed with a key derived from %s", what)
        client = SealedWebClient(token=token, base_url=api_url, retry_handlers=[], seal=self.seal)

        database_url = settings.database_url or default_url()
        # One bot per SQLite file; holding it alone, this bot takes over what a crashed
        # predecessor left claimed at once (`storage.sole_process`).
        sqlite = sqlite_file(database_url)
        self.sole = SoleProcess(sqlite) if sqlite is not None else None
        if self.sole is not None:
            self.sole.acquire()
        self.engine = create_engine(database_url)
        await migrate(self.engine)
        self.stamps = stamp_reader(self.engine)  # what `/rollout status` reads first
        sessions = sessionmaker(self.engine)
        # What this replica runs; on PostgreSQL shown to the others by advisory locks.
        self.claims = Claims(
            self.engine, settings.replica_id or default_replica_id(), sole=self.sole is not None
        )
        specs = self.config.specs()
        self.outbox = OutboxWorker(
            sessions,
            client,
            self.clock,
            self.metrics,
            poll_seconds=self.poll_seconds,
            senders={**incident_outbox.SENDERS, **responses.SENDERS},
            claims=self.claims,
        )
        self.scheduler = Scheduler(
            sessions, self.clock, poll_seconds=self.poll_seconds, claims=self.claims
        )
        self.incidents = self._incidents(sessions, client)
        self.gates = GateService(
            sessions,
            specs,
            self.config.gate_rules(),
            self._metrics_source(),
            self.clock,
            incidents=self.incidents,
            reader=reader(self.engine),
        )
        self.service = RolloutService(
            sessions,
            specs,
            self.config.channel,
            self.clock,
            observations=self.gates.observations,
            reader=reader(self.engine),
            incidents=self.incidents,
            prometheus_url=self.prometheus_url,
        )
        # The one cycle left: the gate tick decides through the rollout service, whose
        # decisions set the gate timers. `bind` closes it, once, here.
        self.gates.bind(self.service)
        self.webhooks = Webhooks(
            sessions, specs, self.config.webhooks(), self.clock, self.config.channel
        )
        self.webhooks.bind(self.service)
        self.service.hooks += [self.gates.on_decision, self.webhooks.on_decision]
        await self.service.prepare()
        await self.gates.follow_config()
        self.scheduler.on(GATES, self.gates.tick)
        self.scheduler.on(SOAK, self.gates.soak_ended, after=RUNS_AFTER[SOAK])
        self.scheduler.on(WEBHOOK, self.webhooks.deliver)
        self.service.on_change.append(self.outbox.kick.set)
        self.service.on_change.append(self.scheduler.kick.set)
        self.flag_files: list[FlagsFile] = []
        if self.config.flags_file:
            self.flag_files.append(
                FlagsFile(self.config.flags_file, lambda: read_document(sessions, specs))
            )
        if self.config.flagd_file:
            self.flag_files.append(
                FlagsFile(self.config.flagd_file, lambda: read_flagd_document(sessions, specs))
            )
        for flag_file in self.flag_files:
            self.service.on_change.append(flag_file.kick.set)
        self.checkpoints = self._checkpoints(sessions, specs)
        self.people = People(self._group_members(client), self.clock)
        self.rehearsals = rehearsals_for(self.config, self.prometheus_url, self.clock.now)
        self.names = UserNames(client)
        am = self.config.alertmanager
        self.silences = Silences(
            self.incidents,
            AlertmanagerApi(am.url, timeout=am.timeout.total_seconds()) if am.url else None,
            names=self.names.names,
        )
        self.handler = Handler(
            self.service,
            self.config.rollout_policy(),
            self.incidents,
            self.people,
            rehearsals=self.rehearsals,
            silences=self.silences,
            snapshot=StatusSnapshot(reader(self.engine), specs, self.stamps),
        )
        self.scheduler.on(EXPIRY, self.service.expire)
        rollout_series = RolloutCollector(self.service)
        self.metrics.registry.register(rollout_series)
        self.metrics.before_scrape.append(rollout_series.refresh)
        if not self.config.roles.configured:
            log.warning(
                "No roles configured: everyone in the workspace may start, advance, "
                "pause and roll back. Set roles.leads and roles.operators to restrict."
            )

        # What the dashboard and the App Home show; gate states and incidents plug in here.
        self.overview = OverviewSource(
            self.service,
            self.clock,
            timezone=self.config.timezone,
            recent_events=self.config.dashboard.recent_events,
            gates=gate_states(self.gates, self.service),
            incidents=open_incidents(sessions),
        )
        self.home = AppHome(self.overview, threads=rollout_threads(self.service))
        self.bolt = build_app(
            token=token,
            signing_secret=self.signing_secret or "unused-in-socket-mode",
            # Bolt puts the token from `authorize` on a copy of this client per request.
            client=AsyncWebClient(base_url=api_url, retry_handlers=[]),
            handler=self.handler,
            service=self.service,
            metrics=self.metrics,
            seal=self.seal,
            slack=client,
            home=self.home,
        )
        register_incident_actions(
            self.bolt,
            self.incidents,
            self.service,
            self.metrics,
            seal=self.seal,
            slack=client,
            home=self.home.notice,
            silences=self.silences,
        )
        register_rehearsal_actions(self.bolt, self.rehearsals, self.service)
        self.alert_intake = AlertIntake(
            sessions,
            self.clock,
            self.incidents,
            self.service,
            HoldPolicy(am.hold_on_critical, am.hold_max_percent, am.critical_severity),
        )
        web_app = build_web_app(
            bolt=self.bolt,
            signing_secret=self.signing_secret,
            service=self.service,
            metrics=self.metrics,
            engine=self.engine,
            replica=self.replica,
            refusals=self.refusals,
            alertmanager=alertmanager_handler(
                self.alert_intake, EndpointAuth.from_config(am, settings.alertmanager_token)
            ),
            commands=at_once_answers(self.handler, self.service, self.metrics),
        )
        self.dashboard = add_dashboard(
            web_app,
            self.overview,
            host=settings.host,
            token=self.config.dashboard.token,
            names=self.names.names,
        )
        self.incidents.on_change.append(self.dashboard.changed)
        server_log = ServerLogger(logging.getLogger("aiohttp.server"), self.refusals)
        self._runner = web.AppRunner(web_app, access_log=None, logger=server_log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        await self.checkpoints.ensure_daily()
        await self.checkpoints.follow_cadence()
        self.housekeeping = Housekeeping(sessions, self.clock)
        self.scheduler.on(HOUSEKEEPING, self.housekeeping.run)
        await self.housekeeping.ensure()
        self._tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
        for flag_file in self.flag_files:
            await flag_file.write_if_changed()  # the file exists once the bot is up
            self._tasks.append(asyncio.create_task(flag_file.run(), name="flags-file"))
        if settings.socket_mode:
            self._socket = CheckedSocketModeHandler(
                self.bolt, settings.slack_app_token, web_client=client, refusals=self.refusals
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("Socket Mode connected")
        log.info("rollout-bot listening on %s", self.url)

    async def stop(self) -> None:
        """Let the outbox and the scheduler finish what they hold (up to DRAIN_SECONDS),
        then cancel what is left."""
        self.outbox.drain()
        self.scheduler.drain()
        draining = [t for t in self._tasks if t.get_name() in ("outbox", "scheduler")]
        if draining:
            await asyncio.wait(draining, timeout=DRAIN_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await self.webhooks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None  # stopping twice is harmless
        if self.standin is not None:
            await self.standin.stop()
            self.standin = None
        await self.claims.close()
        self.stamps.close()
        await self.engine.dispose()
        if self.sole is not None:
            self.sole.release()

    def replica(self) -> dict[str, object]:
        """Which replica this is and what it runs now (for `GET /healthz`)."""
        return {
            "id": self.claims.replica,
            "timers": self.claims.holding(TIMER),
            "outbox": [int(key) for key in self.claims.holding(OUTBOX)],
        }

    @staticmethod
    def _group_members(client: AsyncWebClient) -> GroupMembers:
        async def group_members(group: str) -> list[str]:
            response = await client.usergroups_users_list(usergroup=group)
            return [str(u) for u in response.get("users") or []]

        return group_members

    def _incidents(
        self, sessions: async_sessionmaker[AsyncSession], client: AsyncWebClient
    ) -> IncidentService:
        group_members = self._group_members(client)
        incidents = IncidentService(
            sessions,
            self.clock,
            oncall=self.config.oncall,
            # Who may respond to any incident besides its chain: operators, and leads, who
            # are the chain's last resort and answer for the rollout.
            operators=[*self.config.roles.operators, *self.config.roles.leads],
            channel=self.config.channel,
            group_members=group_members,
        )
        incidents.on_change.append(self.outbox.kick.set)
        incidents.on_change.append(self.scheduler.kick.set)
        self.scheduler.on(TIMER_KIND, incidents.on_timer)
        return incidents

    def _checkpoints(
        self, sessions: async_sessionmaker[AsyncSession], specs: dict[str, RolloutSpec]
    ) -> CheckpointService:
        hour, minute = daily_summary_time(self.config)
        source = self.gates.source  # one client: its concurrency limit is shared
        checkpoints = CheckpointService(
            sessions,
            specs,
            self.clock,
            channel=self.config.channel,
            cadence=self.config.cadence,
            rules=self.config.gate_rules(),
            gate_views=self.gates.observations,
            series=source if isinstance(source, SeriesSource) else None,
            incidents=self.incidents.live,
            timezone=self.config.timezone,
            daily_at=time(hour, minute),
        )
        self.service.hooks.append(checkpoints.on_decision)
        checkpoints.on_change += [self.outbox.kick.set, self.scheduler.kick.set]
        self.scheduler.on(
            CHECKPOINT,
            checkpoints.on_checkpoint,
            lease=timedelta(minutes=2),
            after=RUNS_AFTER[CHECKPOINT],
        )
        self.scheduler.on(
            DAILY, checkpoints.on_daily, lease=timedelta(minutes=10), after=RUNS_AFTER[DAILY]
        )
        return checkpoints

    @property
    def prometheus_url(self) -> str:
        return (self.settings.prometheus_url or self.config.prometheus.url).rstrip("/")

    def _metrics_source(self) -> MetricsSource | None:
        if self.metrics_source is not None:
            return self.metrics_source
        if not self.config.gates:
            return None
        timeout = self.config.prometheus.timeout.total_seconds()
        at = self.clock if self.measure_at_clock else None
        return PrometheusSource(self.prometheus_url, timeout=timeout, clock=at)

    def now(self) -> datetime:
        return self.clock.now()
