"""P1: `/rollout` commands against the floor, a bare endpoint that only verifies the Slack
signature (`make bench`).

Two bots run as processes of their own on SQLite files: one with a single started rollout
(`status`, `status phase-4`, `help`), one with 30 (a `status` that lists them all, and
`pause`/`resume` in turn on each, every one a full decision). The bare endpoint is a
process too, and the load comes from wrk, a third program, with 20 requests in flight,
every request signed as Slack signs it. The floor is measured before and after the
commands and each command's p50, p99 and throughput are given as ratios to its mean. The
targets: `/rollout status` p99 within 2× the floor's, its throughput at least 0.5×.

`P1_BOT_SOURCE=DIR` runs the bots from another checkout's source (how the figures
"before" in tests/bench/baselines/P1-before.json were taken, from the commit they name).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.standin.web_api import SlackStandIn
from tests.bench import commands_floor as floor
from tests.bench.fragments import FRAGMENTS, write_fragment
from tests.bench.wrk_load import Load, available, run_wrk
from tests.conftest import SECRET
from tests.support.bot_process import BotProcess

BEFORE = Path(__file__).parent / "baselines" / "P1-before.json"
SECONDS = 8
ALL_30 = "status (30 rollouts)"


def bot_process(tmp_path: Path, standin: SlackStandIn, names: list[str]) -> BotProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    bot = BotProcess(tmp_path, standin, floor.rollouts_config(names))
    if os.environ.get("P1_BOT_SOURCE"):
        # that source first, and not the current directory's (PYTHONSAFEPATH)
        bot.env.update(PYTHONPATH=os.environ["P1_BOT_SOURCE"], PYTHONSAFEPATH="1")
    return bot


def before_rows() -> list[str]:
    """The same bench on the code before, as recorded then."""
    if not BEFORE.exists():
        return []
    data = json.loads(BEFORE.read_text())
    rows = [
        "",
        f"Before (commit {data['commit']}: every command through Bolt and the database; "
        f"same bench, {data['measured']}):",
        "",
        "| what | p50 ms | p99 ms | requests/s | p99 ÷ floor | throughput ÷ floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    bare = data["floor"]
    for name, f in [("bare signed endpoint (the floor)", bare), *data["commands"].items()]:
        rows.append(
            f"| {name if name.startswith('bare') else f'`{name}`'} | {f['p50_ms']:.1f} | "
            f"{f['p99_ms']:.1f} | {f['per_second']:,.0f} | {f['p99_ms'] / bare['p99_ms']:.2f}× | "
            f"{f['per_second'] / bare['per_second']:.2f}× |"
        )
    return rows


@pytest.mark.bench
@pytest.mark.skipif(not available(), reason="needs wrk (apt-get install wrk)")
async def test_commands_against_the_bare_signed_endpoint(
    tmp_path: Path, standin: SlackStandIn
) -> None:
    work = floor.artifacts(tmp_path)
    one = bot_process(tmp_path / "one", standin, floor.ONE)
    many = bot_process(tmp_path / "many", standin, floor.ROLLOUTS)
    await one.start()
    await many.start()
    runs: dict[str, Load] = {}
    try:
        await floor.start_all(one.url, SECRET, floor.ONE)
        await floor.start_all(many.url, SECRET, floor.ROLLOUTS)
        shown = await floor.answers(one.url, SECRET, ["status", "status phase-4", "help"])
        assert "phase-4" in shown["status"] and "5 %" in shown["status"], shown
        assert shown["status phase-4"] == shown["status"]
        assert "/rollout status" in shown["help"]
        listed = (await floor.answers(many.url, SECRET, ["status"]))["status"]
        assert all(name in listed for name in floor.ROLLOUTS)
        async with floor.bare_endpoint(SECRET) as bare_url:
            first = await run_wrk(bare_url, floor.same("status"), SECRET, work, seconds=SECONDS)
            for text in ["status", "status phase-4", "help"]:
                runs[text] = await run_wrk(
                    one.url, floor.same(text), SECRET, work, seconds=SECONDS
                )
            runs[ALL_30] = await run_wrk(
                many.url, floor.same("status"), SECRET, work, seconds=SECONDS
            )
            runs["pause / resume"] = await run_wrk(
                many.url, floor.pause_resume(), SECRET, work, seconds=SECONDS
            )
            last = await run_wrk(bare_url, floor.same("status"), SECRET, work, seconds=SECONDS)
    finally:
        await one.stop()
        await many.stop()
    for load in [first, last, *runs.values()]:
        floor.check_clean(load)
    bare = floor.floor_of(first, last)
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    (FRAGMENTS / "P1.json").write_text(json.dumps({
        "measured": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "floor": floor.load_json(bare),
        "commands": {k: floor.load_json(v) for k, v in runs.items()},
    }, indent=2))
    status = runs["status"]
    verdict = (
        f"`/rollout status`: p99 {status.p99_ms / bare.p99_ms:.2f}× the floor's (target ≤ 2×), "
        f"throughput {status.per_second / bare.per_second:.2f}× (target ≥ 0.5×)."
    )
    text = "\n".join([
        f"wrk (one thread, 20 requests in flight, {SECONDS} s a run, each request signed "
        "beforehand) against the bot on SQLite, a process of its own; `status`, "
        "`status phase-4` and `help` on a bot with one started rollout, the rest on one with "
        "30. The floor, an aiohttp endpoint that only verifies the signature, was measured "
        f"before and after the commands and its mean is used (before: p99 {first.p99_ms:.1f} "
        f"ms, {first.per_second:,.0f}/s; after: p99 {last.p99_ms:.1f} ms, "
        f"{last.per_second:,.0f}/s).",
        "",
        *floor.ratio_rows(bare, iter(runs.items())),
        "",
        verdict,
        *before_rows(),
    ])
    write_fragment("P1", text)
    print("\n" + text)
