"""An HTTP proxy in front of a real server (Prometheus) that fails on the test's command.

    proxy = FaultProxy(prometheus.url)
    await proxy.start()          # forwards everything: the bot is pointed at proxy.url
    await proxy.down()           # nothing listens on the port: connection refused
    await proxy.up()             # listening again, on the same port
    proxy.slow(3.0)              # each answer comes after 3 s (past the bot's timeout)
    proxy.garbage(ANSWERS)       # each request gets the next canned answer, in turn
    proxy.forward()              # back to the real server's answers
    proxy.seen                   # how many requests each mode answered
    proxy.hold_next("/api/v1/query")   # the next such request waits until `release()`
    proxy.arrivals               # (monotonic time, path) of every request, as it arrived
    proxy.queries                # the instant queries asked, in order (PromQL text)

Everything it answers is real HTTP on a real socket; only what is said is chosen.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web


@dataclass(frozen=True)
class Answer:
    """A canned answer: what a broken server, or something else at its URL, says."""

    name: str
    status: int
    body: bytes
    content_type: str = "application/json"
    chunked: bool = False  # sent without a Content-Length


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def success(result: str) -> bytes:
    return b'{"status":"success","data":{"resultType":"vector","result":' + result.encode() + b"}}"


# What a broken Prometheus, or a proxy or load balancer in front of it, may answer.
GARBAGE: tuple[Answer, ...] = (
    Answer("html page", 200, b"<!doctype html><html><body>Sign in</body></html>", "text/html"),
    Answer("http 500", 500, b"internal server error", "text/plain"),
    Answer("http 502 html", 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
           "text/html"),
    Answer("query error json", 422, b'{"status":"error","errorType":"execution",'
           b'"error":"query processing would load too many samples into memory"}'),
    Answer("error json with 200", 200, b'{"status":"error","errorType":"timeout",'
           b'"error":"query timed out in expression evaluation"}'),
    Answer("truncated json", 200, b'{"status":"success","data":{"resultType":"vec'),
    Answer("nested 100000 deep", 200, nested(100_000)),
    Answer("a value that is not a number", 200,
           success('[{"metric":{},"value":[1700000000,"lots"]}]')),
    Answer("a sample of the wrong shape", 200, success('[{"metric":{},"value":"0.001"}]')),
    Answer("a result that is not a list", 200, success('"nothing"')),
    Answer("8 MiB answer", 200, success('[{"metric":{"pad":"' + "x" * (8 << 20) + '"},'
                                        '"value":[1700000000,"0.001"]}]')),
    Answer("an empty 200", 200, b"", "text/plain"),
)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "forward"
        self.delay = 0.0
        self._answers: Iterator[Answer] = iter(())
        self.seen: collections.Counter[str] = collections.Counter()
        self.queries: list[str] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        self._http: aiohttp.ClientSession | None = None
        self.arrivals: list[tuple[float, str]] = []
        self._hold_path: str | None = None
        self._held = asyncio.Event()  # set: a request is being held
        self._released = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        await self.up()

    async def up(self) -> None:
        assert self._runner is not None and self._site is None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await self._site.start()
        if not self._port:
            self._port = self._runner.addresses[0][1]
        self.mode = "forward"

    async def down(self) -> None:
        """Stop listening: connections are refused until `up()`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self.mode = "down"

    def forward(self) -> None:
        self.mode = "forward"

    def slow(self, delay: float) -> None:
        self.mode, self.delay = "slow", delay

    def hold_next(self, path: str) -> None:
        """Keep the next request for `path` waiting (its sender stuck in the middle of
        what it does) until `release()`; every other request is answered as before."""
        self._hold_path = path
        self._held.clear()
        self._released.clear()

    async def wait_held(self) -> None:
        """Until the request `hold_next` waits for has arrived and is held."""
        await self._held.wait()

    def release(self) -> None:
        self._hold_path = None
        self._released.set()

    def garbage(self, answers: Sequence[Answer] = GARBAGE) -> None:
        self.mode, self._answers = "garbage", itertools.cycle(answers)

    async def stop(self) -> None:
        await self.down()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append((asyncio.get_running_loop().time(), request.path))
        if request.path == "/api/v1/query":  # in the URL (GET) or the form body (POST)
            form = await request.post() if request.method == "POST" else {}
            self.queries.append(str(request.query.get("query") or form.get("query") or ""))
        if self._hold_path is not None and request.path == self._hold_path:
            self._hold_path = None
            self._held.set()
            await self._released.wait()
        if self.mode == "garbage":
            answer = next(self._answers)
            self.seen[f"garbage: {answer.name}"] += 1
            if answer.chunked:
                return await self._chunked(request, answer)
            response = web.Response(
                status=answer.status, body=answer.body, content_type=answer.content_type
            )
        else:
            response = await self._answer(request)
        # No keep-alive: once `down()`, no connection kept open from before still answers.
        response.force_close()
        return response

    async def _chunked(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status)
        response.content_type = answer.content_type
        response.enable_chunked_encoding()
        response.force_close()
        await response.prepare(request)
        for start in range(0, len(answer.body), 1 << 16):
            await response.write(answer.body[start : start + (1 << 16)])
        await response.write_eof()
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        mode = self.mode
        self.seen[mode] += 1
        if mode == "slow":
            await asyncio.sleep(self.delay)  # the fault itself: an answer that comes late
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        async with self._http.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "text/plain")},
        ) as upstream:
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                content_type=upstream.content_type,
            )
