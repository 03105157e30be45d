"""The dashboard, App Home and terminal renderers are pure: importing them loads no I/O
library, no storage, no service and no clock."""

from __future__ import annotations

import json
import subprocess
import sys

RENDERERS = (
    "bot.render.overview_model",
    "bot.render.dashboard_page",
    "bot.render.app_home",
    "bot.demo.terminal",
)
FORBIDDEN = (
    "aiohttp",
    "sqlalchemy",
    "slack_sdk",
    "slack_bolt",
    "asyncio",
    "storage",
    "bot.services",
    "bot.clock",
    "bot.config",
)


def test_renderers_import_nothing_that_does_io() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in RENDERERS)
        + "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    offenders = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert offenders == []
