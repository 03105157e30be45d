"""`rollout-bot serve | demo | init [FILE] | check-config FILE | rehearse --config FILE NAME`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import examples
from bot.config import Config, load_config
from bot.domain.assess import GateRule
from bot.domain.batched_query import Batched, plan
from bot.domain.durations import format_duration
from bot.domain.plans import Tier
from bot.domain.policy import Policy
from bot.errors import ConfigError
from bot.files import create_file, replace_file
from bot.settings import Settings

STARTER_FILE = "rollout-bot.yml"  # what `rollout-bot init` writes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rollout-bot", description="Progressive rollouts from Slack."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the bot (Slack, API, metrics)")
    serve.add_argument("--config", help="YAML config (default: $ROLLOUT_CONFIG)")
    serve.add_argument("--host", help="address to bind (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 3000; 0 picks one)")
    serve.add_argument(
        "--clock-file",
        help="read the time from this file (an ISO 8601 instant a driver rewrites) instead "
        "of the system clock: for fault and replica tests that step simulated time",
    )
    serve.add_argument(
        "--measure-at-clock",
        action="store_true",
        help="gates ask Prometheus for each value at the clock's time, not at Prometheus's "
        "own now: with --clock-file, over a Prometheus that holds the stepped period",
    )

    demo = sub.add_parser(
        "demo",
        help="watch a week of rollout in a minute: no Slack, no Prometheus needed",
        description="Runs the built-in example genesis-phase4.yml (`rollout-bot init "
        "--example genesis-phase4` writes it out) in compressed time on a temporary "
        "SQLite file, with simulated metrics and the local Slack stand-in, and prints what "
        "#deployments and the on-call DMs would show.",
    )
    demo.add_argument(
        "--config", help="YAML config (default: the built-in example genesis-phase4.yml)"
    )
    demo.add_argument(
        "--speed",
        type=float,
        help="simulated seconds per real second (default 10080: seven days in a minute)",
    )
    demo.add_argument(
        "--no-breach", action="store_true", help="no fault: the rollout completes at 100 %%"
    )
    demo.add_argument(
        "--interactive",
        action="store_true",
        help="afterwards, keep the bot running and read /rollout commands from the terminal",
    )
    demo.add_argument("--user", default="U0CORA", help="who types in --interactive (U0CORA)")
    demo.add_argument("--db", help="SQLite file to keep (default: a temporary one)")
    demo.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    demo.add_argument(
        "--all-checkpoints", action="store_true", help="print every checkpoint summary"
    )

    init = sub.add_parser(
        "init",
        help="write a starter config to edit (default: rollout-bot.yml here)",
        description="Writes one of the example configs that ship with the bot: minimal (one "
        "rollout on the built-in safe plan, advanced by hand) or genesis-phase4 (the demo's: "
        "its own plan, tiered gates, roles, an on-call chain).",
    )
    init.add_argument(
        "file", nargs="?", default=STARTER_FILE, help=f"where to write it ({STARTER_FILE})"
    )
    init.add_argument(
        "--example", choices=examples.names(), default=examples.STARTER,
        help=f"which example ({examples.STARTER})",
    )
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    check = sub.add_parser("check-config", help="validate a config and print each plan")
    check.add_argument("file")

    rehearse = sub.add_parser(
        "rehearse",
        help="replay a rollout's plan and gates over Prometheus history",
        description="Reads the rollout's gates over a past period with Prometheus range "
        "queries and says what the bot would have done: each advance, hold and rollback, "
        "whether it would have reached 100 %%, and each gate against its thresholds.",
    )
    rehearse.add_argument("name", help="the rollout to rehearse")
    rehearse.add_argument("--config", help="YAML config (default: $ROLLOUT_CONFIG)")
    rehearse.add_argument("--over", default="7d", help="how long a period (default 7d)")
    rehearse.add_argument("--plan", help="another plan to rehearse (default: the rollout's)")
    rehearse.add_argument(
        "--from", dest="start", help="the period's start, YYYY-MM-DD[THH:MM] in the config's "
        "timezone (default: the period ends now)"
    )
    rehearse.add_argument("--chart", help="also write the chart to this PNG file")

    args = parser.parse_args(argv)
    if args.command == "rehearse":
        return rehearse_command(args)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "demo":
        return demo_command(args)
    if args.command == "init":
        return init_command(args.file, args.example, force=args.force)
    return serve_command(args)


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    print(describe(config))
    return 0


def describe(config: Config) -> str:
    lines = [f"channel {config.channel}, timezone {config.timezone}"]
    if not config.roles.configured:
        lines.append("roles: none configured — everyone may start, advance and roll back")
    lines.extend(describe_batching(config.gate_rules()))
    for spec in config.specs().values():
        lines.append("")
        lines.append(
            f"{spec.name}: flag {spec.flag}, plan {spec.plan.name} "
            f"({format_duration(spec.plan.total_soak)} in all), advance {spec.advance.value}"
        )
        for i, stage in enumerate(spec.plan.stages, 1):
            flags = f", switches on {', '.join(stage.flags)}" if stage.flags else ""
            lines.append(
                f"  stage {i}: {stage.percent:>3} % for {format_duration(stage.soak)}{flags}"
            )
        rules = config.gate_rules()
        for name in spec.gates:
            lines.append(f"  gate {describe_gate(rules[name])}")
        lines.extend(f"  {line}" for line in describe_policy(spec.policy))
        webhook = next((r.webhook for r in config.rollouts if r.name == spec.name), None)
        if webhook:
            lines.append(f"  webhook: {webhook}")
    if not config.rollouts:
        lines.append("no rollouts configured")
    return "\n".join(lines)


def describe_policy(policy: Policy) -> list[str]:
    """A rollout's effective policy: who may make each step, the two-person rule, and
    the freeze windows."""
    lines = []
    if policy.restricted:
        for step in ("start", "advance", "force", "pause", "rollback"):
            who = ", ".join(policy.who_may(step)) or "nobody"
            roles = "/".join(r.value for r in policy.roles_allowed(step) if policy.holders.get(r))
            lines.append(f"may {step}: {who} ({roles or 'no one holds the role'})")
    else:
        lines.append("may act: everyone (no roles configured)")
    two = policy.two_person
    if two is not None:
        lines.append(
            f"two-person rule: steps to {two.from_percent} % or more need a second person,"
            f" within {format_duration(two.confirm_within)}"
        )
    for window in policy.windows:
        lines.append(f"freeze window: {window.describe()} ({policy.timezone})")
    return lines


def describe_batching(rules: dict[str, GateRule]) -> list[str]:
    """Which gates are measured in one query a tick for every rollout sharing them, and
    why the others are measured once per rollout."""
    if not rules:
        return []
    lines = ["", "gates measured per tick:"]
    for name, rule in rules.items():
        how = plan(rule.query)
        if isinstance(how, Batched):
            lines.append(
                f"  {name}: batched — one query for every rollout, grouped by {how.label}"
            )
        else:
            lines.append(f"  {name}: one query per rollout — {how.reason}")
    return lines


def describe_gate(rule: GateRule) -> str:
    """`error_rate: fails above 0.005 / 0.01 / 0.01 for 5m / 5m / 10m …` (canary /
    progressive / final)."""
    side, table = ("above", rule.fail_above) if rule.fail_above else ("below", rule.fail_below)
    assert table is not None  # a gate has one of the two, checked when the config loads
    thresholds = " / ".join(f"{table[t]:g}" for t in Tier)
    windows = " / ".join(format_duration(rule.window_at(t)) for t in Tier)
    return (
        f"{rule.name}: fails {side} {thresholds} for {windows} (canary / progressive / final),"
        f" measured every {format_duration(rule.interval)}, no data: {rule.on_no_data.value}"
    )


def demo_command(args: argparse.Namespace) -> int:
    from bot.demo import scenario as demo

    options = demo.Options(
        breach=not args.no_breach,
        interactive=args.interactive,
        user=args.user,
        db=Path(args.db) if args.db else None,
        port=args.port,
        all_checkpoints=args.all_checkpoints,
    )
    if args.config:
        options.config = Path(args.config)
    if args.speed:
        options.speed = args.speed
    try:
        return demo.run(options)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def init_command(file: str, example: str, *, force: bool = False) -> int:
    path = Path(file)
    data = examples.text(example).encode()
    try:
        if force:
            replace_file(path, data)
        else:
            create_file(path, data)
    except FileExistsError:
        print(
            f"{path} already exists; nothing written. To replace it: rollout-bot init "
            f"{file} --force; or write another: rollout-bot init other.yml",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"{path}: cannot write: {exc.strerror}; nothing written", file=sys.stderr)
        return 1
    print(
        f"Wrote {path} (the {example} example). Edit it, then:\n"
        f"  rollout-bot check-config {file}     validates it and prints each plan\n"
        f"  rollout-bot serve --config {file}   runs the bot"
    )
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from bot.app import RolloutBot  # the server's imports are heavy; check-config skips them
    from bot.clock import FileClock
    from storage.sole_process import AnotherBot

    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k)) is not None}
    settings = Settings(**overrides)
    problem = settings.problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    path = args.config or settings.rollout_config
    if not path:
        print(
            "No config: pass --config FILE or set ROLLOUT_CONFIG "
            f"(`rollout-bot init` writes {STARTER_FILE} to start from).",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        clock = FileClock(args.clock_file) if args.clock_file else None
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def run() -> int:
        bot = RolloutBot(config, settings, clock, measure_at_clock=args.measure_at_clock)
        try:
            await bot.start()
        except AnotherBot as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"rollout-bot listening on {bot.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await bot.stop()
        return 0

    return asyncio.run(run())


def rehearse_command(args: argparse.Namespace) -> int:
    from datetime import datetime
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from bot.clock import SystemClock
    from bot.domain.durations import parse_duration
    from bot.render.charts import render_chart
    from bot.services.rehearsals import Ask, rehearsals_for

    settings = Settings()
    path = args.config or settings.rollout_config
    if not path:
        print("No config: pass --config FILE or set ROLLOUT_CONFIG.", file=sys.stderr)
        return 2
    try:
        config = load_config(path)
        over = parse_duration(args.over)
        start = datetime.fromisoformat(args.start) if args.start else None
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=ZoneInfo(config.timezone))
    url = (settings.prometheus_url or config.prometheus.url).rstrip("/")
    rehearsals = rehearsals_for(config, url, SystemClock().now)
    ask = Ask(args.name, over, args.plan, start)
    problem = rehearsals.problem(ask)
    if problem:
        print(problem.replace("`", ""), file=sys.stderr)
        return 2

    answer = asyncio.run(rehearsals.rehearse(ask, with_button=False))
    print("\n".join(answer.lines))
    if args.chart:
        Path(args.chart).write_bytes(render_chart(answer.chart))
        print(f"\nChart: {args.chart}")
    return 0
