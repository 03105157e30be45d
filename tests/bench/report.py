"""`python -m tests.bench.report`: docs/PERFORMANCE.md from the fragments of one bench run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.fragments import FRAGMENTS, SECTIONS

OUT = Path(__file__).parents[2] / "docs" / "PERFORMANCE.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=OUT.parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render() -> str:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` from one run; rerun it to measure your own machine.",
        "",
        f"- Measured: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}",
        "",
    ]
    missing = []
    for key, title in SECTIONS.items():
        fragment = FRAGMENTS / f"{key}.md"
        if not fragment.exists():
            missing.append(key)
            continue
        lines += [f"## {title}", "", fragment.read_text().rstrip(), ""]
    if missing:
        lines += [f"Not measured in this run: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
