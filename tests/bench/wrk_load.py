"""Load from wrk (Debian's `wrk`), a process of its own: signed Slack requests, prepared
beforehand, sent with a fixed number in flight; its latency and throughput as a dict."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.support.slack_requests import signed_headers

WRK = "/usr/bin/wrk"

# Each line of the data file: timestamp, signature, body (urlencoded: no tab, no newline).
_SCRIPT = """
local requests = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local ts, sig, body = line:match("^([^\\t]*)\\t([^\\t]*)\\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", "/slack/events", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = ts,
      ["X-Slack-Signature"] = sig,
    }, body)
  end
end
function request()
  i = i % #requests + 1
  return requests[i]
end
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def available() -> bool:
    return shutil.which(WRK) is not None


def _prepare(bodies: list[str], secret: str, work: Path) -> tuple[Path, Path]:
    """The script, and the requests signed now (Slack's signatures hold for 5 minutes)."""
    work.mkdir(parents=True, exist_ok=True)
    script, data = work / "signed.lua", work / f"requests-{id(bodies)}.tsv"
    script.write_text(_SCRIPT)
    lines = []
    for body in bodies:
        headers = signed_headers(body, secret)
        lines.append(
            f"{headers['X-Slack-Request-Timestamp']}\t{headers['X-Slack-Signature']}\t{body}"
        )
    data.write_text("\n".join(lines) + "\n")
    return script, data


async def run_wrk(
    base_url: str,
    bodies: list[str],
    secret: str,
    work: Path,
    *,
    in_flight: int = 20,
    seconds: int = 8,
) -> Load:
    """Send `bodies` (cycled) to `base_url`/slack/events for `seconds`, `in_flight` at once."""
    script, data = _prepare(bodies, secret, work)
    process = await asyncio.create_subprocess_exec(
        WRK, "-t1", f"-c{in_flight}", f"-d{seconds}s", "--timeout", "30s",
        "-s", str(script), base_url, "--", str(data),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()[-2000:]}")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    return Load(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        non_2xx=figures["non_2xx"],
        socket_errors=figures["socket_errors"],
    )
