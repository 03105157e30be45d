"""Headless Chromium driven over the DevTools protocol, with nothing but aiohttp.

Debian's `chromium` package provides the browser (`make test` installs it). The browser
picks a free debugging port and writes it to `DevToolsActivePort` in its profile directory,
so tests can run in parallel.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

PACKAGE = "chromium"
# A browser on a loaded two-core machine may take tens of seconds to start, load a page or
# run a script: every wait here is for a condition, with this much room.
COMMAND_TIMEOUT = 60.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-allow-origins=*",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    return None


class Page:
    """One tab: send commands, wait for events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._replies.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for waiter in self._events.pop(data.get("method", ""), []):
                    if not waiter.done():
                        waiter.set_result(data.get("params", {}))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[call_id] = future
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        async with asyncio.timeout(COMMAND_TIMEOUT):
            reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def expect(self, event: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault(event, []).append(future)
        return future

    async def goto(self, url: str) -> None:
        loaded = self.expect("Page.loadEventFired")
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise RuntimeError(f"could not open {url}: {result['errorText']}")
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await loaded

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        value: Any = None
        while loop.time() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"after {timeout}s, {expression} is still {value!r}")

    async def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", format="png")
        return _save(path, base64.b64decode(result["data"]))


def _save(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _open_log(profile: Path) -> BinaryIO:
    profile.mkdir(parents=True, exist_ok=True)
    return (profile / "chromium.log").open("wb")


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with one open page; fails, naming the package, when it is missing."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError(
            f"Chromium is not installed. Install the Debian package `{PACKAGE}` "
            f"(apt-get install -y {PACKAGE}; `make test` does it), or set CHROMIUM to a binary."
        )
    log = _open_log(profile)
    process = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=log,
        stderr=log,
    )
    try:
        port = await _debugging_port(profile, process)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page_target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page_target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                try:
                    yield page
                finally:
                    page._reader.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def _debugging_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = asyncio.get_running_loop().time() + COMMAND_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if marker.exists():
            first = marker.read_text().split("\n", 1)[0].strip()
            if first.isdigit():
                return int(first)
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    output = (profile / "chromium.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"Chromium did not open its debugging port; it said:\n{output}")
