"""The daily summary at 09:00: one message for the channel, then a chart per active rollout
uploaded into its thread with Slack's current flow; gate history from range queries."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import aiohttp
import matplotlib.image as mpimg
from matplotlib.dates import num2date

from bot.app import RolloutBot
from bot.clock import ManualClock
from bot.domain.rollout import Advance, Start
from bot.render.charts import (
    MARKER_LABEL,
    PANEL_PX,
    WIDTH_PX,
    build_figure,
    render_chart,
    zone_name,
)
from bot.services.rollouts import Actor
from bot.standin.web_api import SlackStandIn
from storage.repository import Repository
from tests.conftest import BotFactory, SlackUser
from tests.support.incidents import open_via_opener, settle
from tests.support.recorded_metrics import RecordedSource

ERROR_QUERY = 'sum(rate(http_requests_total{flag="phase_4_deployment",code=~"5.."}[1m]))'
P95_QUERY = 'histogram_quantile(0.95, rate(latency_bucket{flag="phase_4_deployment"}[1m]))'
CONFIG = f"""
channel: "#deployments"
timezone: Europe/Paris
daily_summary: "10:00"
gates:
  error_rate:
    query: '{ERROR_QUERY.replace("phase_4_deployment", "{flag}")}'
    fail_above: 0.05
  p95_latency:
    query: '{P95_QUERY.replace("phase_4_deployment", "{flag}")}'
    fail_above: {{canary: 0.25, progressive: 0.3, final: 0.5}}
rollouts:
  - {{name: phase-4, flag: phase_4_deployment, plan: safe, gates: [error_rate, p95_latency]}}
"""
QUERIES = {ERROR_QUERY: "error_rate", P95_QUERY: "p95_latency"}


async def test_a_daily_summary_with_a_chart_uploaded_in_order(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()  # 2026-11-02 09:00 UTC = 10:00 in Paris: the summary is tomorrow
    source = RecordedSource(clock, QUERIES)
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start")
    await settle(bot)
    assert not [p for p in standin.calls_to("chat.postMessage") if "Daily" in p.params["text"]]

    await clock.advance(timedelta(hours=24))
    await settle(bot)
    calls = [c for c in standin.calls if not c.failed]
    names = [c.method for c in calls]
    summary_at = next(
        i for i, c in enumerate(calls)
        if c.method == "chat.postMessage" and c.params["text"].startswith("Daily rollout")
    )
    summary = calls[summary_at]
    uploads = names[summary_at:]
    first = uploads.index("files.getUploadURLExternal")
    assert uploads[first:first + 3] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"
    ]
    header = summary.params["blocks"][0]["text"]["text"]
    assert header == "Daily rollout summary · Tue 03 Nov"
    body = json.dumps(summary.params["blocks"], ensure_ascii=False)
    assert "*phase-4* · progressing at 5 %" in body
    assert "all gates green" in body

    complete = calls[summary_at + first + 2]
    assert complete.params["channel_id"] == summary.response["channel"]
    assert complete.params["thread_ts"] == summary.response["ts"]
    (uploaded,) = standin.uploaded_files.values()
    image = mpimg.imread(io.BytesIO(uploaded), format="png")
    assert (image.shape[1], image.shape[0]) == (WIDTH_PX, PANEL_PX * 3)  # traffic + 2 gates
    assert set(source.range_queries) == set(QUERIES)  # the history came from range queries


async def test_with_prometheus_down_the_summary_still_posts_and_says_what_is_missing(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    source = RecordedSource(clock, QUERIES, down=True)
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start")
    await settle(bot)  # the first measurements (source down) are taken before the jump
    await clock.advance(timedelta(hours=24))
    await settle(bot)
    summary = next(
        c for c in standin.calls_to("chat.postMessage") if c.params["text"].startswith("Daily")
    )
    body = json.dumps(summary.params["blocks"], ensure_ascii=False)
    assert "⚠️ source down *error_rate*" in body
    assert "⚠️ Missing: worst error_rate since the last checkpoint: Prometheus is unreachable" in (
        body
    )
    assert len(standin.uploaded_files) == 1  # the chart still goes, saying why it is empty


async def test_the_chart_thresholds_step_with_the_tier_and_its_times_are_local(
    make_bot: BotFactory,
) -> None:
    clock = ManualClock()
    source = RecordedSource(clock, QUERIES)
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    cora = Actor("U0CORA", "slash")
    started = clock.now()
    assert (await bot.service.act("phase-4", Start(), cora)).ok
    await clock.advance(timedelta(hours=6))
    assert (await bot.service.act("phase-4", Advance(10, force=True, reason="t"), cora)).ok
    await clock.advance(timedelta(hours=6))
    advanced = clock.now()
    assert (await bot.service.act("phase-4", Advance(25, force=True, reason="t"), cora)).ok
    await clock.advance(timedelta(hours=6))

    spec = bot.service.specs["phase-4"]
    day_ago = clock.now() - timedelta(hours=24)  # before the start: the chart shows 0 % there
    data = await bot.checkpoints.chart_data(spec, day_ago, clock.now())
    assert data.percent[:2] == [(day_ago, 0), (started, 5)]
    gates = {g.name: g for g in data.gates}
    assert list(gates["p95_latency"].thresholds) == [(day_ago, 0.25), (advanced, 0.3)]
    assert list(gates["error_rate"].thresholds) == [(day_ago, 0.05)]  # the same in every tier
    assert data.zone == ZoneInfo("Europe/Paris")
    assert zone_name(data.zone) == "Europe/Paris"


async def test_a_rollout_rolled_back_during_the_day_is_in_the_summary(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    bot = await make_bot(CONFIG, clock=clock, metrics_source=RecordedSource(clock, QUERIES))
    cora = SlackUser(http, bot, "U0CORA")
    await cora.say("start")
    await clock.advance(timedelta(hours=3))
    await cora.say("rollback -- error budget burning")
    await clock.advance(timedelta(hours=21))
    await settle(bot)
    (summary,) = [
        c.params for c in standin.calls_to("chat.postMessage")
        if c.params["text"].startswith("Daily")
    ]
    assert summary["text"] == "Daily rollout summary: 0 active, 1 rolled back"
    body = json.dumps(summary["blocks"], ensure_ascii=False)
    assert "*phase-4* · rolled back to 0 %\\n`▱▱▱▱▱▱▱▱▱▱` *0 %* · no traffic" in body
    assert "gates not measured at 0 %" in body

    await open_via_opener(bot)  # the next day brings only an ack on the rolled-back rollout
    await settle(bot)
    await cora.say("ack")
    await clock.advance(timedelta(hours=24))
    await settle(bot)
    summaries = [
        c.params for c in standin.calls_to("chat.postMessage")
        if c.params["text"].startswith("Daily")
    ]
    assert summaries[-1]["text"] == "Daily rollout summary: 0 active"
    assert "No rollout is active." in json.dumps(summaries[-1]["blocks"])
    assert "Held at 0 %: waits for `/rollout start phase-4` to begin again." in body


async def test_the_chart_draws_the_whole_day_with_a_rollback_before_the_restart(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    """Started, rolled back in the morning, started again: the chart titled "last 24 h"
    shows all of it, and its upload says so in words for a screen reader."""
    clock = ManualClock()  # 09:00 UTC; the summary is at 10:00 Paris, 09:00 UTC tomorrow
    bot = await make_bot(CONFIG, clock=clock, metrics_source=RecordedSource(clock, QUERIES))
    cora = SlackUser(http, bot, "U0CORA")
    day_start = clock.now()
    await clock.advance(timedelta(hours=1))
    await cora.say("start")
    await clock.advance(timedelta(hours=2))
    await cora.say("rollback -- error budget burning")
    await clock.advance(timedelta(hours=3))
    await cora.say("start")
    await clock.advance(timedelta(hours=18))
    await settle(bot)
    assert clock.now() - day_start == timedelta(hours=24)

    (get_url,) = standin.calls_to("files.getUploadURLExternal")
    alt = get_url.params["alt_txt"]
    assert alt.startswith(
        "Chart of phase-4 over the last 24 h, from 02 Nov 10:00 to 03 Nov 10:00 (Europe/Paris)."
    )
    assert "started at 02 Nov 11:00, rolled back at 02 Nov 13:00, started at 02 Nov 16:00" in alt
    (complete,) = standin.calls_to("files.completeUploadExternal")
    assert complete.response["files"][0]["alt_txt"] == alt  # Slack keeps it on the file

    # The PNG is this figure: the whole day on its time axis, each change labelled.
    spec = bot.service.specs["phase-4"]
    data = await bot.checkpoints.chart_data(spec, day_start, clock.now())
    (uploaded,) = standin.uploaded_files.values()
    assert uploaded == render_chart(data)
    figure = build_figure(data)
    low, high = figure.axes[-1].get_xlim()
    assert (num2date(low), num2date(high)) == (day_start, clock.now())
    labels = [t.get_text() for t in figure.axes[0].texts if t.get_gid() == MARKER_LABEL]
    assert labels == ["start", "rollback", "start"]
    assert [v for _, v in data.percent] == [0, 5, 0, 5]
    assert data.title == "phase-4 · phase_4_deployment · last 24 h"


async def bot_until_retried(bot: RolloutBot, clock: ManualClock) -> None:
    """Until the outbox is empty, moving the clock past each retry's backoff."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        async with bot.service.sessions() as session:
            if await Repository(session).outbox_depth() == 0:
                return
        assert loop.time() < deadline, "the outbox did not empty"
        await clock.advance(timedelta(seconds=2))
        await asyncio.sleep(0.05)


async def test_a_chart_whose_upload_answer_was_lost_is_shared_once(
    make_bot: BotFactory, standin: SlackStandIn, http: aiohttp.ClientSession
) -> None:
    """Slack completed the upload and shared the chart, but its answer never came: the
    retry finds the chart in the summary's thread and does not upload it again."""
    clock = ManualClock()
    source = RecordedSource(clock, QUERIES)
    bot = await make_bot(CONFIG, clock=clock, metrics_source=source)
    await SlackUser(http, bot, "U0CORA").say("start")
    await settle(bot)
    standin.lose_next_answer("files.completeUploadExternal")
    await clock.advance(timedelta(hours=24))
    await standin.wait_for("files.completeUploadExternal", timeout=60)
    await bot_until_retried(bot, clock)
    assert len(standin.calls_to("files.completeUploadExternal")) == 1
    assert standin.calls_to("conversations.replies"), "the retry did not look first"
    shared = [
        f["name"] for m in standin.messages("#deployments") for f in m.get("files", [])
    ]
    assert len(shared) == 1 and shared[0].endswith(".png"), shared
