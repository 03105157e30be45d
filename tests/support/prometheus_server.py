"""A real Prometheus (the Debian ``prometheus`` binary) for integration tests.

    server = PrometheusServer([fake_service.target])
    await server.start()                      # ready, and the targets scraped once (up == 1)
    await server.wait_for_value('sum(rate(http_requests_total[5s]))', lambda v: v is not None)
    await server.restart()                    # same port, same TSDB directory
    server.close()                            # stop and delete the temp directory

Startup: ``/-/ready`` answers within ~0.1 s, but the first scrape lands only ~5 s later: service
discovery hands targets to the scrape manager on a fixed 5 s tick that no flag of 2.42 changes.
``start(wait_for_targets=True)`` therefore takes about 5.5 s, and so does ``restart()``.

``BinaryServer`` (the process handling) is shared with ``alertmanager_server``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

PROMETHEUS_BINARY = "/usr/bin/prometheus"
_BIND_ERROR = "address already in use"
_LIVE: set[BinaryServer] = set()


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(default: str, env_var: str, debian_package: str) -> str:
    """``$env_var``, else ``default``, else the name on PATH; a clear error when missing."""
    candidates = [os.environ.get(env_var), default, shutil.which(Path(default).name)]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        f"{default} not found: the integration tests run the real binary. Install the Debian "
        f"package `{debian_package}` (apt-get install {debian_package}), or point "
        f"${env_var} at the binary."
    )


try:  # loaded here, not in the forked child (dlopen after fork can deadlock)
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the child if pytest dies, so no server outlives a crashed run.

    Linux ties this to the thread that started the child: start servers from the thread that
    outlives them (pytest's event loop thread does).
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


class ServerStartError(RuntimeError):
    pass


class BinaryServer:
    """A server binary on a free loopback port, in its own temp directory.

    Subclasses provide ``name``, ``_command(port)`` and, optionally, ``_after_ready()``.
    """

    name = "server"
    ready_path = "/-/ready"

    def __init__(self, binary: str, *, start_timeout: float = 20.0, bind_attempts: int = 5) -> None:
        self.binary = binary
        self.start_timeout = start_timeout
        self.bind_attempts = bind_attempts
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-test-"))
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    # -- to override ---------------------------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    async def _after_ready(self, deadline: float) -> None:
        return None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        try:
            return subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    async def start(self, *, same_port: bool = False) -> None:
        """Start and wait until ready; on a bind race, retry (on a new port unless same_port)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running at {self.url}")
        deadline = time.monotonic() + self.start_timeout
        for attempt in range(1, self.bind_attempts + 1):
            port = self._port if same_port and self._port is not None else free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._proc = self._spawn(port)
            self._port = port
            _LIVE.add(self)
            exited = await self._wait_ready(deadline, port, log_offset)
            if exited is None:
                try:
                    await self._after_ready(deadline)
                except BaseException:
                    self.stop()
                    raise
                return
            output = self.log_path.read_text(errors="replace")[log_offset:]
            self.stop()
            if _BIND_ERROR in output and attempt < self.bind_attempts:
                await asyncio.sleep(0.2 if same_port else 0)
                continue
            raise ServerStartError(
                f"{self.name} exited with code {exited} on port {port} "
                f"(attempt {attempt}):\n{output[-3000:]}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _has_bound(self, port: int, log_offset: int, spawned: float) -> bool:
        """Our process holds the port, not whatever else answers there.

        Both binaries log ``msg="Listening on" address=127.0.0.1:PORT`` once bound; if a
        future version words it differently, surviving a second counts as bound (a bind
        error makes them exit within ~50 ms).
        """
        try:
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                output = log.read().decode(errors="replace")
        except OSError:
            output = ""
        for line in output.splitlines():
            if '"Listening on"' in line and f"127.0.0.1:{port}" in line:
                return True
        return time.monotonic() - spawned > 1.0

    async def _wait_ready(self, deadline: float, port: int, log_offset: int) -> int | None:
        """None once bound and ``ready_path`` answers 200; the exit code if it died first."""
        assert self._proc is not None
        spawned = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
            while True:
                code = self._proc.poll()
                if code is not None:
                    return code
                if self._has_bound(port, log_offset, spawned):
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(self.url + self.ready_path) as response:
                            if response.status == 200:
                                return None
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartError(
                        f"{self.name} not ready at {self.url} after {self.start_timeout}s:\n"
                        f"{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Keeps the data for ``restart()``."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        await self.start(same_port=True)

    def close(self) -> None:
        """Stop and delete the temp directory (config, data, log)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<{type(self).__name__} {where} pid={self.pid} dir={self.workdir}>"


# What the `prometheus_factory` fixture gives: `await factory(targets, **kwargs)`.
PrometheusFactory = Callable[..., Awaitable["PrometheusServer"]]


class PrometheusQueryError(RuntimeError):
    pass


class PrometheusServer(BinaryServer):
    """``prometheus`` scraping ``targets`` every second, with its TSDB in a temp directory."""

    name = "prometheus"

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        job_name: str = "service",
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        lookback_delta: str | None = None,
        extra_args: Sequence[str] = (),
        wait_for_targets: bool = True,
        binary: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        super().__init__(
            binary or find_binary(PROMETHEUS_BINARY, "PROMETHEUS_BIN", "prometheus"),
            start_timeout=start_timeout,
        )
        self.targets = list(targets)
        self.job_name = job_name
        self.lookback_delta = lookback_delta
        self.extra_args = list(extra_args)
        self.wait_for_targets = wait_for_targets
        self.storage_path = self.workdir / "data"
        self.config_path = self.workdir / "prometheus.yml"
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "evaluation_interval": evaluation_interval,
            },
            "scrape_configs": [
                {"job_name": job_name, "static_configs": [{"targets": self.targets}]}
            ]
            if self.targets
            else [],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _command(self, port: int) -> list[str]:
        command = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.storage_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        if self.lookback_delta:
            command.append(f"--query.lookback-delta={self.lookback_delta}")
        return command + self.extra_args

    async def _after_ready(self, deadline: float) -> None:
        if not (self.wait_for_targets and self.targets):
            return
        # Only scrapes from this run count: after restart() the old `up` samples are still there.
        since = time.time()
        selector = f'up{{job="{self.job_name}"}}'
        expr = f"count(({selector} == 1) and (timestamp({selector}) > {since:.3f}))"
        try:
            await self.wait_for_value(
                expr,
                lambda v: v == len(self.targets),
                timeout=max(0.1, deadline - time.monotonic()),
            )
        except AssertionError as exc:
            raise ServerStartError(
                f"prometheus at {self.url} did not scrape {self.targets}: {exc}\n{self.log_tail()}"
            ) from exc

    # -- HTTP API ------------------------------------------------------------------------------

    async def query(
        self, promql: str, *, at: float | None = None, session: aiohttp.ClientSession | None = None
    ) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (a scalar comes back as one unlabelled sample)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        async with contextlib.AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
                )
            async with session.get(self.url + "/api/v1/query", params=params) as response:
                body = await response.json(content_type=None)
        if body.get("status") != "success":
            raise PrometheusQueryError(
                f"{promql!r}: {body.get('errorType')}: {body.get('error')} (HTTP {response.status})"
            )
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    async def query_value(
        self, promql: str, *, at: float | None = None, session: aiohttp.ClientSession | None = None
    ) -> float | None:
        """None for an empty result (no data), else the single sample's value (may be NaN)."""
        result = await self.query(promql, at=at, session=session)
        if not result:
            return None
        if len(result) > 1:
            labels = [series.get("metric") for series in result]
            raise PrometheusQueryError(f"{promql!r} returned {len(result)} series: {labels}")
        return float(result[0]["value"][1])

    async def wait_for_value(
        self,
        promql: str,
        predicate: Callable[[float | None], bool],
        timeout: float = 20.0,
        *,
        interval: float = 0.25,
    ) -> float | None:
        """Poll ``query_value`` until ``predicate(value)`` holds; return that value.

        Connection errors count as "not yet" (the server may be restarting); a bad query fails
        at once. On timeout, AssertionError with the values seen.
        """
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                try:
                    value = await self.query_value(promql, session=session)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    seen.append(type(exc).__name__)
                else:
                    if predicate(value):
                        return value
                    seen.append("no data" if value is None else _fmt(value))
                if time.monotonic() >= deadline:
                    recent = ", ".join(seen[-8:])
                    raise AssertionError(
                        f"{promql!r} did not satisfy the predicate within {timeout}s; "
                        f"last values: {recent}"
                    )
                await asyncio.sleep(interval)


def _fmt(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.4g}"
