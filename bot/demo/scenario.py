"""`rollout-bot demo`: the whole bot on one machine, a week of rollout in about a minute.

The real `RolloutBot` runs unchanged — its scheduler, gates, outbox, incidents and
checkpoints — with three things swapped for local ones:

- time is a `DemoClock` (`--speed`; by default seven days take about a minute), slowed to
  `SLOW_MOTION` from a little before the injected fault until the page is acknowledged, so
  the five-minute escalation steps can be followed (and answered), and standing still while
  the bot draws the daily summary: the half second its chart takes would otherwise be an
  hour of demo time, and the summary would speak of a morning already gone;
- the metrics source is `SimulatedService` (bot/demo/metrics.py), which answers the config's
  gate queries from a model of the service, with a fault scheduled at 25 %;
- Slack is the embedded stand-in; every call the bot makes to it is printed as the channel
  or DM would show it (bot/demo/terminal.py), stamped with simulated time.

The people are played by this module, through the bot's own HTTP endpoint exactly as Slack
would call it (signed slash commands and button clicks): Cora starts the rollout and types
`/rollout advance next` when a stage's soak is over; when the bot rolls back and pages, the
first person in the chain does not answer and the second presses **Acknowledge**.

One deviation from the example config, stated in the transcript's header: gates are measured
every `DEMO_INTERVAL` of simulated time instead of every 30 s / 1 min, so that a week of
measurements fits in a minute of real time. Thresholds, windows, plan, chain and cadence are
the example's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from bot import examples
from bot.app import RolloutBot
from bot.clock import ScaledClock
from bot.config import Config, load_config
from bot.demo.metrics import ERROR_RATE, Fault, SimulatedService
from bot.demo.terminal import render
from bot.domain.durations import format_duration
from bot.render import buttons as actions
from bot.services.outbox import OutboxWorker, Sender
from bot.settings import Settings
from bot.standin import signed
from bot.standin.web_api import Call, SlackStandIn
from storage.models import OutboxRow

WEEK = timedelta(days=7)
DEFAULT_SPEED = WEEK.total_seconds() / 60  # seven days in a minute: 10,080×
SLOW_MOTION = 600.0  # ten minutes a second, around the breach
DEMO_INTERVAL = timedelta(minutes=30)
START = datetime(2026, 11, 2, 9, 29, tzinfo=UTC)  # a Monday; Cora starts at 09:30
FAULT_AFTER = timedelta(hours=6)  # into the 25 % stage
FAULT_ERROR_RATE = 0.024
ACK_AFTER = timedelta(minutes=2)  # how long the one who answers takes
GIVE_UP_AFTER = timedelta(days=10)  # simulated: a demo that has not ended by then failed
POLL = 0.05  # real seconds, for the bot's loops and the people
CHECKPOINT_EVERY = timedelta(hours=6)  # printed: the first after a change, then this often

NARRATOR = 2**62  # sorts the narrator after the messages of the same moment

NAMES = {
    "U0FORGE": "Forge",
    "U0HUDSON": "Hudson",
    "U0CORA": "Cora",
    "U0ALEX": "Alex",
    "U0BOT": "rollout-bot",
}


class DemoClock(ScaledClock):
    """A `ScaledClock` that stands still inside `stopped()`: for work whose real duration,
    multiplied by the demo's speed, would misrepresent how long it takes."""

    def __init__(self, speed: float, start: datetime) -> None:
        super().__init__(speed, start=start)
        self._stops = 0

    def now(self) -> datetime:
        return self._start if self._stops else super().now()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.set_speed(self.speed)  # counts from this moment
        self._stops += 1
        try:
            yield
        finally:
            self._stops -= 1
            self._t0 = time.monotonic()  # and goes on from it


def demo_config(config: Config, interval: timedelta = DEMO_INTERVAL) -> Config:
    """The config with every gate measured at most once per `interval` (nothing else
    changes), so a week of measurements fits in a minute."""
    gates = {
        name: gate.model_copy(update={"interval": max(gate.interval, interval)})
        for name, gate in config.gates.items()
    }
    return config.model_copy(update={"gates": gates})


@dataclass
class Options:
    config: Path | None = None  # None: the built-in genesis-phase4 example
    speed: float = DEFAULT_SPEED
    breach: bool = True
    interactive: bool = False
    user: str = "U0CORA"
    db: Path | None = None
    port: int = 0
    all_checkpoints: bool = False
    seed: int = 4
    interval: timedelta = DEMO_INTERVAL  # gates are measured at most this often


class Transcript:
    """What #deployments and the DMs show, as text stamped with simulated time.

    A message is stamped with the moment the bot queued it (its outbox row's time), which is
    what Slack would show were delivery instant: at 10,000× the few milliseconds a delivery
    takes are minutes. Lines come out in the order of their stamps (then of their outbox
    rows), each once the simulated clock has passed its stamp by `hold` real seconds: a line
    reaches the buffer milliseconds after its stamp, so by then every line stamped earlier
    is there too, and the printed stamps never go backwards. With `hold` 0 (--interactive)
    each line is printed at once.
    """

    def __init__(
        self,
        clock: ScaledClock,
        start: datetime,
        names: Mapping[str, str],
        out: TextIO,
        *,
        all_checkpoints: bool = False,
        hold: float = 2.5,
    ) -> None:
        self.clock = clock
        self.day_one = start.date()
        self.names = dict(names)
        self.out = out
        self.all_checkpoints = all_checkpoints
        self.hold = hold
        self.places: dict[str, str] = {}  # channel id → "#deployments", "DM @Forge"
        self.threads: dict[str, str] = {}  # thread ts → what its parent was about
        self.answers: dict[str, str] = {}  # response_url tag → where it shows, and to whom
        self.last_checkpoint: datetime | None = None
        self.skipped_checkpoints = 0
        self.on_message: list[Callable[[Call, datetime], None]] = []
        self._queued: dict[str, deque[tuple[datetime, int]]] = {}  # text → (time, row id)
        self._buffer: list[tuple[datetime, int, int, str]] = []
        self._seq = itertools.count()
        self._times: deque[tuple[float, datetime]] = deque()  # (real, simulated) at flushes

    # --- writing ------------------------------------------------------------------------

    def stamp(self, at: datetime) -> str:
        day = (at.date() - self.day_one).days + 1
        return f"[Day {day} {at:%H:%M}]"

    def say(self, where: str, text: str, at: datetime | None = None, row: int = 0) -> None:
        at = at or self.clock.now()
        head = f"{self.stamp(at)} {where}: " if where else f"{self.stamp(at)} "
        lines = text.strip("\n").splitlines() or [""]
        indent = " " * (len(self.stamp(at)) + 3)
        rest = "".join(f"\n{indent}{line}" if line else "\n" for line in lines[1:])
        body = head + lines[0] + rest
        self._buffer.append((at, row, next(self._seq), body))
        if self.hold <= 0:
            self.flush()

    def note(self, text: str, at: datetime | None = None) -> None:
        """The narrator: what happens outside Slack (the simulation, people's absence).
        Printed after the messages of the same moment."""
        self.say("", f"({text})", at, row=NARRATOR)

    def flush(self, older_than: float = 0.0) -> None:
        """Print, in order, the buffered lines stamped no later than the simulated time of
        `older_than` real seconds ago (`flush()`: every line)."""
        real = time.monotonic()
        self._times.append((real, self.clock.now()))
        while len(self._times) > 1 and self._times[1][0] <= real - older_than:
            self._times.popleft()
        then, horizon = self._times[0]
        if then > real - older_than:
            return  # the transcript has not been running that long
        ready = sorted(e for e in self._buffer if e[0] <= horizon)
        if not ready:
            return
        self._buffer = [e for e in self._buffer if e[0] > horizon]
        self.out.write("".join(e[3] + "\n" for e in ready))
        self.out.flush()

    async def run(self) -> None:
        """Flush the buffer as lines come of age."""
        while True:
            await asyncio.sleep(0.05)
            self.flush(self.hold)

    def changed(self) -> None:
        """A change of percentage: the next checkpoint is printed whatever its time."""
        self.last_checkpoint = None

    def place(self, channel: str) -> str:
        return self.places.get(channel, channel)

    def name(self, user: str) -> str:
        return self.names.get(user, user)

    # --- what the bot queued, and what reached the stand-in -----------------------------

    def queued(self, row: OutboxRow) -> None:
        """The outbox is about to send `row`: remember when it was queued."""
        key = str(row.payload.get("text") or row.payload.get("comment") or "")
        created = row.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        self._queued.setdefault(key, deque()).append((created, row.id))

    def _when(self, text: str) -> tuple[datetime, int]:
        queue = self._queued.get(text)
        if queue:
            return queue.popleft()
        return self.clock.now(), 0

    def on_call(self, call: Call) -> None:
        method, params = call.method, call.params
        if call.failed:
            return  # retried by the outbox: the message is printed when it lands
        if method == "chat.postMessage":
            self._posted(call)
        elif method == "chat.update":
            text = str(params.get("text", ""))
            at, row = self._when(text)
            if "Incident" in text:  # a rollout's parent refresh is not news; an incident's is
                where = self.place(str(params.get("channel", "")))
                self.say(f"{where} (message edited)", self._render(params), at, row)
        elif method == "chat.postEphemeral":
            at, row = self._when(str(params.get("text", "")))
            where = self.place(str(params.get("channel", "")))
            who = self.name(str(params.get("user", "")))
            self.say(f"{where} (only {who} sees)", self._render(params), at, row)
        elif method.startswith("response_url:"):
            at, row = self._when(str(params.get("text", "")))
            where = self.answers.get(method.split(":", 1)[1], "(only you see)")
            self.say(where, self._render(params), at, row)
        elif method == "files.completeUploadExternal":
            comment = str(params.get("initial_comment") or "")
            at, row = self._when(comment)
            where = self.place(str(params.get("channel_id", "")))
            thread = f" › {self.threads.get(str(params.get('thread_ts')), 'thread')} thread"
            files = params.get("files") or []
            title = files[0].get("title", "chart") if files and isinstance(files[0], dict) else ""
            where += thread if params.get("thread_ts") else ""
            self.say(where, f"📈 {comment} [chart image: {title}]", at, row)

    def _posted(self, call: Call) -> None:
        params = call.params
        text = str(params.get("text", ""))
        at, row = self._when(text)
        channel = str(call.response.get("channel") or params.get("channel", ""))
        where = self.place(channel)
        thread_ts = params.get("thread_ts")
        if thread_ts:
            where += f" › {self.threads.get(str(thread_ts), 'thread')} thread"
        elif call.response.get("ts"):
            self.threads[str(call.response["ts"])] = _topic(text)
        for listener in self.on_message:
            listener(call, at)
        if text.startswith("Checkpoint "):
            self._checkpoint(where, params, at, row)
            return
        self.say(where, self._render(params), at, row)

    def _checkpoint(self, where: str, params: Mapping[str, Any], at: datetime, row: int) -> None:
        recent = self.last_checkpoint is not None and at - self.last_checkpoint < CHECKPOINT_EVERY
        if recent and not self.all_checkpoints:
            self.skipped_checkpoints += 1
            return
        self.last_checkpoint = at
        self.say(where, checkpoint_line(self._render(params)), at, row)

    def _render(self, params: Mapping[str, Any]) -> str:
        return render(params, names=self.names)


def _topic(text: str) -> str:
    """A thread parent's subject, for labelling its replies: `phase-4`, `Incident INC-1`."""
    head = text.split(":", 1)[0].strip().lstrip("🚨 ").strip()
    return head[:40] or "thread"


def checkpoint_line(rendered: str) -> str:
    """A checkpoint summary (rendered) compacted to one line: state, time in stage, gates."""
    lines = [line.strip() for line in rendered.splitlines() if line.strip()]
    first = lines[0].removeprefix("Checkpoint · ") if lines else "checkpoint"
    stage = next((ln for ln in lines if "in stage" in ln), "")
    in_stage = stage.rsplit("·", 1)[-1].strip() if "in stage" in stage else ""
    gates = []
    for line in lines:
        for mark, word in (("✅ pass ", "✓"), ("🔴 FAIL ", "✗"), ("⚪ no data ", "?"),
                           ("⚠️ source down ", "!")):
            if line.startswith(mark):
                name_value = line.removeprefix(mark).split(" (")[0]
                gates.append(f"{name_value} {word}")
    parts = ["checkpoint", first]
    if in_stage:
        parts.append(in_stage)
    if gates:
        parts.append(", ".join(gates))
    return " · ".join(parts)


class Person:
    """Someone in the workspace who types into Slack: signed requests to the bot."""

    def __init__(
        self, demo: Demo, user: str, http: aiohttp.ClientSession
    ) -> None:
        self.demo = demo
        self.user = user
        self.http = http
        self.name = demo.transcript.name(user)
        self._answers = itertools.count(1)

    def response_url(self, where: str) -> str:
        """A fresh response_url for one interaction (Slack gives each its own)."""
        tag = f"{self.name.lower()}-{next(self._answers)}"
        self.demo.transcript.answers[tag] = f"{where} (only {self.name} sees)"
        return self.demo.standin.response_url(tag)

    async def type(self, command: str) -> str:
        """Type a slash command in #deployments; print it and the reply only they see."""
        demo = self.demo
        typed = demo.clock.now()
        demo.transcript.say(f"{self.name} in #deployments", command, typed)
        body = signed.slash_command(
            command,
            user_id=self.user,
            user_name=self.name.lower(),
            channel_id=demo.channel_id,
            response_url=self.response_url("#deployments"),
        )
        reply = await self._post(body)
        text = render(reply, names=demo.transcript.names) if isinstance(reply, dict) else reply
        # Slack shows the reply at once; the bot's milliseconds are minutes of demo time.
        demo.transcript.say(f"#deployments (only {self.name} sees)", text, typed)
        return text

    async def press(self, label: str, action_id: str, value: str, channel: str, ts: str) -> None:
        """Press a button on a message."""
        demo = self.demo
        demo.transcript.say(demo.transcript.place(channel), f"{self.name} pressed [{label}]")
        body = signed.button_click(
            action_id,
            value,
            user_id=self.user,
            user_name=self.name.lower(),
            channel_id=channel,
            message_ts=ts,
            response_url=self.response_url(demo.transcript.place(channel)),
        )
        await self._post(body)

    async def _post(self, body: str) -> Any:
        headers = signed.signed_headers(body, self.demo.bot.signing_secret)
        async with self.http.post(
            f"{self.demo.bot.url}/slack/events", data=body.encode(), headers=headers
        ) as response:
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()


@dataclass
class Page:
    user: str
    channel: str
    ts: str
    value: str
    at: datetime
    noted: bool = False


class Demo:
    def __init__(self, options: Options, out: TextIO = sys.stdout) -> None:
        self.options = options
        self.out = out
        config = load_config(options.config) if options.config else examples.load(examples.DEMO)
        self.config = demo_config(config, options.interval)
        # Real time while the bot starts (migrations and all), compressed once it is up.
        self.clock = DemoClock(1.0, start=START)
        self.service_model = SimulatedService(self.clock, seed=options.seed)
        self.transcript = Transcript(
            self.clock, START, NAMES, out, all_checkpoints=options.all_checkpoints
        )
        self.spec = next(iter(self.config.specs().values()))
        self.pages: list[Page] = []
        self.acknowledged = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.channel_id = ""

    @property
    def standin(self) -> SlackStandIn:
        assert self.bot.standin is not None
        return self.bot.standin

    async def run(self) -> int:
        with contextlib.ExitStack() as stack:
            db = self.options.db
            if db is None:
                db = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.db"
            settings = Settings(
                slack_bot_token="",
                slack_app_token="",
                slack_signing_secret="",
                database_url=f"sqlite+aiosqlite:///{db}",
                host="127.0.0.1",
                port=self.options.port,
            )
            self.bot = RolloutBot(
                self.config,
                settings,
                self.clock,
                metrics_source=self.service_model,
                poll_seconds=POLL,
            )
            await self.bot.start()
            await asyncio.to_thread(_warm_up_charts)
            try:
                return await self._run(db)
            finally:
                await self.bot.stop()

    async def _run(self, db: Path) -> int:
        standin = self.standin
        self.channel_id = standin.channel_id(self.config.channel)
        places = self.transcript.places
        places[self.channel_id] = self.config.channel
        for user, name in NAMES.items():
            places[standin.channel_id(user)] = f"DM @{name}"
            standin.set_user(user, display_name=name)  # the dashboard shows people by name
        self.transcript.on_message.append(self._watch)
        standin.listeners.append(self.transcript.on_call)
        self._tap_outbox()
        self._stop_time_for_daily_summary()
        self._header(db)
        printer = asyncio.create_task(self.transcript.run())
        self.clock.set_speed(self.options.speed)
        try:
            async with aiohttp.ClientSession() as http:
                ended = await self._scenario(http)
                self.transcript.flush()
                if self.options.interactive:
                    await self._interactive(http)
        finally:
            printer.cancel()
            for task in self._tasks:
                task.cancel()
            self.transcript.flush()
        return 0 if ended else 1

    def _tap_outbox(self) -> None:
        """Tell the transcript when each message was queued, just before it is sent."""
        outbox = self.bot.outbox
        for kind, send in list(outbox.senders.items()):

            async def tapped(
                worker: OutboxWorker, row: OutboxRow, send: Sender = send
            ) -> None:
                self.transcript.queued(row)
                await send(worker, row)

            outbox.senders[kind] = tapped

    def _stop_time_for_daily_summary(self) -> None:
        """Time stands still while the bot gathers the daily summary and draws its charts."""
        self.bot.checkpoints.rendering = self.clock.stopped

    def _header(self, db: Path) -> None:
        spec, opts = self.spec, self.options
        stages = " → ".join(
            f"{s.percent} %/{format_duration(s.soak)}" for s in spec.plan.stages
        )
        chain = " → ".join(
            NAMES.get(level.user or "", level.user or str(level.group))
            for level in self.config.oncall.chain
        )
        day = WEEK.total_seconds() / opts.speed / 7
        lines = [
            "rollout-bot demo — what #deployments and the on-call DMs would show",
            f"config    {opts.config or examples.source(examples.DEMO)}"
            f" · rollout {spec.name} (flag {spec.flag})",
            f"plan      {spec.plan.name}: {stages} · advance {spec.advance.value}",
            f"gates     {', '.join(spec.gates)} · tiers canary ≤ 10 % < progressive ≤ 50 % "
            "< final",
            f"on call   {chain}",
            f"time      simulated, {opts.speed:,.0f}× (a day every {day:.1f} s)"
            + (f"; slowed to {SLOW_MOTION:,.0f}× around the breach" if opts.breach else ""),
            "metrics   a simulated service; "
            + (
                f"its error rate rises to {FAULT_ERROR_RATE:.1%} "
                f"{format_duration(FAULT_AFTER)} into the 25 % stage"
                if opts.breach
                else "no fault (--no-breach)"
            ),
            f"demo      gates measured every {format_duration(opts.interval)} (the example: "
            "30s/1m) so a week fits in a minute; thresholds, windows, plan, chain and "
            "checkpoint cadence are the example's",
            "          the clock stands still while the bot draws the daily summary's charts "
            "(its half second of real work would otherwise show as an hour)",
            "          checkpoints: one line each"
            + ("" if opts.all_checkpoints else
               f"; the first after each change, then one every "
               f"{format_duration(CHECKPOINT_EVERY)} (the thread gets them all; "
               "--all-checkpoints prints every one)"),
            f"dashboard {self.bot.url}/  (open it while the demo runs)",
            f"database  {db}",
            "",
        ]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    # --- the people -------------------------------------------------------------------

    def _watch(self, call: Call, at: datetime) -> None:
        """Pages: a DM with an Acknowledge button."""
        channel = str(call.response.get("channel") or "")
        user = next((u for u in NAMES if self.transcript.place(channel) == f"DM @{NAMES[u]}"),
                    None)
        if user is None:
            return
        for block in call.params.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("action_id") == actions.INCIDENT_ACK:
                    ts = str(call.response.get("ts", ""))
                    self.pages.append(Page(user, channel, ts, str(element["value"]), at))

    async def _scenario(self, http: aiohttp.ClientSession) -> bool:
        spec = self.spec
        leads = self.config.roles.leads or ["U0CORA"]
        lead = Person(self, leads[0], http)
        await self._until(START + timedelta(minutes=1))
        await lead.type(f"/rollout start {spec.name}")
        fault_at: datetime | None = None
        tried: dict[int, datetime] = {}  # version → when the lead last tried to advance
        deadline = START + GIVE_UP_AFTER
        chain = [lv.user for lv in self.config.oncall.chain if lv.user]
        answerer = chain[1] if len(chain) > 1 else chain[0] if chain else None
        while self.clock.now() < deadline:
            await asyncio.sleep(POLL)
            state = await self._state(http)
            now = self.clock.now()
            if state["state"] == "completed":
                await self._settle()
                self._end(state)
                return True
            if self.options.breach and fault_at is None and state["percent"] == 25:
                started = datetime.fromisoformat(state["stage_started_at"])
                fault_at = started + FAULT_AFTER
                self.service_model.inject(
                    Fault(ERROR_RATE, FAULT_ERROR_RATE, fault_at, flag=spec.flag)
                )
                self._tasks.add(asyncio.create_task(self._slow_motion(fault_at)))
            if self.pages and answerer is not None:
                if await self._oncall(http, answerer):
                    await self._settle()
                    self._end(await self._state(http))
                    return True
                continue
            if state["state"] != "progressing" or state["stage"] == len(state["stages"]):
                continue
            if state["soak_ends_at"] is None:
                continue  # a gate is not green: the soak counts from when it is
            soak_end = datetime.fromisoformat(state["soak_ends_at"])
            last = tried.get(state["version"])
            if now >= soak_end and (last is None or now - last >= timedelta(hours=1)):
                tried[state["version"]] = now
                await lead.type(f"/rollout advance next {spec.name}")
                self.transcript.changed()
        self.transcript.note(f"the demo did not end within {format_duration(GIVE_UP_AFTER)}")
        return False

    async def _slow_motion(self, fault_at: datetime) -> None:
        await self._until(fault_at - timedelta(minutes=15))
        self.clock.set_speed(min(SLOW_MOTION, self.options.speed))
        self.transcript.note(
            f"slow motion: {self.clock.speed:,.0f}× until the page is acknowledged"
        )
        await self._until(fault_at)
        self.transcript.note(
            f"simulation: the error rate of {self.spec.flag} rises to {FAULT_ERROR_RATE:.1%}, "
            "above the progressive tier's threshold"
        )
        await self.acknowledged.wait()
        self.clock.set_speed(self.options.speed)

    async def _oncall(self, http: aiohttp.ClientSession, answerer: str) -> bool:
        """The chain is paged: everyone before `answerer` is away; `answerer` acknowledges
        `ACK_AFTER` after their page. True once acknowledged."""
        for page in self.pages:
            if page.user != answerer:
                if not page.noted:
                    page.noted = True
                    self.transcript.note(
                        f"{NAMES.get(page.user, page.user)} is away from the keyboard "
                        "and does not answer", page.at
                    )
                continue
            await self._until(page.at + ACK_AFTER)
            person = Person(self, answerer, http)
            await person.press("Acknowledge", actions.INCIDENT_ACK, page.value, page.channel,
                               page.ts)
            self.acknowledged.set()
            return True
        return False

    async def _settle(self) -> None:
        """Let the last messages land (in simulated minutes, at most a second of real time)."""
        end = self.clock.now() + timedelta(minutes=20)
        real_deadline = asyncio.get_running_loop().time() + 1.0
        loop = asyncio.get_running_loop()
        while self.clock.now() < end and loop.time() < real_deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL)

    def _end(self, state: Mapping[str, Any]) -> None:
        words = f"{state['state'].replace('_', ' ')} at {state['percent']} %"
        lines = [f"End state: {self.spec.name} {words}"]
        if state.get("hold_reason"):
            lines.append(f"reason: {state['hold_reason']}")
        if self.transcript.skipped_checkpoints:
            lines.append(
                f"{self.transcript.skipped_checkpoints} more checkpoints went to the thread "
                "than are printed here"
            )
        self.transcript.say("", "\n".join(lines))

    async def _state(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(f"{self.bot.url}/api/rollouts/{self.spec.name}") as response:
            data: dict[str, Any] = await response.json()
            return data

    async def _until(self, moment: datetime) -> None:
        while self.clock.now() < moment:  # noqa: ASYNC110 (the clock's speed may change)
            await asyncio.sleep(POLL)

    # --- --interactive ----------------------------------------------------------------

    async def _interactive(self, http: aiohttp.ClientSession) -> None:
        self.clock.set_speed(60.0)
        self.transcript.hold = 0.0
        person = Person(self, self.options.user, http)
        self.out.write(
            f"\nThe bot keeps running (time now 60×: a minute a second); dashboard "
            f"{self.bot.url}/\nType /rollout commands as {person.name} "
            "(/rollout help), or exit.\n"
        )
        loop = asyncio.get_running_loop()
        while True:
            self.out.write("> ")
            self.out.flush()
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.strip()
            if line in ("exit", "quit"):
                break
            if not line:
                continue
            if not line.startswith("/"):
                line = "/rollout " + line
            await person.type(line)
            await asyncio.sleep(0.3)  # let the messages it caused land before the prompt
            self.transcript.flush()


def _warm_up_charts() -> None:
    """Draw one chart before time is compressed: the first one loads matplotlib and its
    fonts, which would otherwise hold the demo still for a second at the first summary."""
    from bot.render.charts import ChartData, GateSeries, render_chart

    end = START + timedelta(hours=1)
    render_chart(ChartData("warm-up", START, end, [(START, 0)], [GateSeries("g", [(START, 0.0)])]))


def run(options: Options) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(Demo(options).run())
