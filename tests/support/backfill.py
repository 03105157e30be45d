"""A real Prometheus holding days of history, written by `promtool tsdb create-blocks-from
openmetrics` before the server starts (the Debian `prometheus` package ships both).

    text = request_counters({"checkout_v2": rates}, start, end, step)
    server = await backfilled_prometheus(text)     # started; queries read the blocks
    server.close()

`request_counters` writes `http_requests_total{flag, code}` counters whose per-second rates
are given per sample interval, so `rate()` over them gives those ratios back.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from tests.support.prometheus_server import PrometheusServer, find_binary

PROMTOOL = "/usr/bin/promtool"
# Per flag: at a moment, (requests per second, share of them failing).
Traffic = Callable[[datetime], tuple[float, float]]


def request_counters(
    flags: Mapping[str, Traffic], start: datetime, end: datetime, step: timedelta
) -> str:
    """OpenMetrics text: for each flag, a `code="200"` and a `code="500"` counter sampled
    every `step` from `start` to `end`, increasing at the rates `flags` give."""
    lines = [
        "# HELP http_requests requests served",
        "# TYPE http_requests counter",
    ]
    for flag, traffic in flags.items():
        totals = {"200": 0.0, "500": 0.0}
        at = start
        samples: dict[str, list[str]] = {"200": [], "500": []}
        while at <= end:
            stamp = at.timestamp()
            for code in totals:
                samples[code].append(
                    f'http_requests_total{{flag="{flag}",code="{code}"}} '
                    f"{totals[code]:.6f} {stamp:.3f}"
                )
            rate, failing = traffic(at)
            seconds = step.total_seconds()
            totals["500"] += rate * failing * seconds
            totals["200"] += rate * (1 - failing) * seconds
            at += step
        for code in totals:  # OpenMetrics wants each series' samples together, in order
            lines += samples[code]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def write_blocks(text: str, directory: Path) -> None:
    promtool = find_binary(PROMTOOL, "PROMTOOL_BIN", "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    source = directory.parent / "history.om"
    source.write_text(text)
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(directory)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    source.unlink()


async def backfilled_prometheus(text: str, retention: str = "60d") -> PrometheusServer:
    """A started Prometheus whose TSDB holds `text`'s samples (and scrapes nothing)."""
    server = PrometheusServer(
        (), wait_for_targets=False, extra_args=[f"--storage.tsdb.retention.time={retention}"]
    )
    try:
        write_blocks(text, server.storage_path)
        await server.start()
    except BaseException:
        server.close()
        raise
    return server
