"""P1: `/rollout` commands against the floor, a bare endpoint that only verifies the Slack
signature (`make bench`).

The bot runs as its own process on a SQLite file with 30 started rollouts; the bare
endpoint is a process of its own too; the load comes from wrk, a third process, with 20
requests in flight, every request signed as Slack signs it. The floor is measured before
and after the commands, and each command's p50, p99 and throughput are given as ratios to
it. The targets: `/rollout status` p99 within 2× the floor's, its throughput at least 0.5×.
"""

from __future__ import annotations

import json
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


def before_rows() -> list[str]:
    """The same bench on the code before the status fast path, as recorded then."""
    if not BEFORE.exists():
        return []
    data = json.loads(BEFORE.read_text())
    rows = [
        "",
        f"Before (commit {data['commit']}, every command through Bolt; same bench, "
        f"{data['measured']}):",
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
    bot = BotProcess(tmp_path, standin, floor.rollouts_config())
    await bot.start()
    runs: dict[str, Load] = {}
    try:
        await floor.start_all(bot.url, SECRET)
        shown = await floor.answers(bot.url, SECRET)
        assert floor.NAMED in shown["status"] and "r29" in shown["status"]
        assert floor.NAMED in shown[f"status {floor.NAMED}"]
        assert "r29" not in shown[f"status {floor.NAMED}"]
        assert "/rollout" in shown["help"]
        async with floor.bare_endpoint(SECRET) as bare_url:
            first = await run_wrk(bare_url, floor.same("status"), SECRET, work, seconds=SECONDS)
            for text in ["status", f"status {floor.NAMED}", "help"]:
                runs[text] = await run_wrk(
                    bot.url, floor.same(text), SECRET, work, seconds=SECONDS
                )
            runs["pause / resume"] = await run_wrk(
                bot.url, floor.pause_resume(), SECRET, work, seconds=SECONDS
            )
            last = await run_wrk(bare_url, floor.same("status"), SECRET, work, seconds=SECONDS)
    finally:
        await bot.stop()
    for load in [first, last, *runs.values()]:
        floor.check_clean(load)
    bare = floor.floor_of(first, last)
    rows = floor.ratio_rows(bare, iter(runs.items()))
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    (FRAGMENTS / "P1.json").write_text(json.dumps({
        "floor": floor.load_json(bare),
        "commands": {k: floor.load_json(v) for k, v in runs.items()},
    }, indent=2))
    status = runs["status"]
    verdict = (
        f"`/rollout status`: p99 {status.p99_ms / bare.p99_ms:.2f}× the floor's (target ≤ 2×), "
        f"throughput {status.per_second / bare.per_second:.2f}× (target ≥ 0.5×)."
    )
    text = "\n".join([
        f"wrk, one thread, 20 requests in flight, {SECONDS} s a run, each request signed; "
        "the bot on SQLite with 30 started rollouts; the floor (an aiohttp endpoint that "
        "only verifies the signature) measured before and after the commands, its mean "
        f"used (before: p99 {first.p99_ms:.1f} ms, {first.per_second:,.0f}/s; after: "
        f"p99 {last.p99_ms:.1f} ms, {last.per_second:,.0f}/s).",
        "",
        *rows,
        "",
        verdict,
        *before_rows(),
    ])
    write_fragment("P1", text)
    print("\n" + text)
