"""A stand-in scoring server: fast, slow, failing or huge on request, and it counts what it sees.

Used by the router's tests and benchmark, by the e2e kubelet stand-in (one per "pod"), and for
trying the router offline. It is a raw asyncio protocol so that in the benchmark the scorer is never
the bottleneck the router is measured against. Behaviour comes from flags (the pod's personality)
and may be overridden per request with headers:

    x-stub-delay-ms: 200      answer after this long
    x-stub-status: 500        answer with this status
    x-stub-bytes: 104857600   answer with this many bytes (streamed, never held whole)
    x-stub-early: 1           answer as soon as the head is in, then read and drop the body, as a
                              server refusing a body by its Content-Length does (413)

The answer is JSON naming the server and the body length and SHA-256 it received (computed as the
body streams in). `GET /stats` reports requests seen and the most requests it ever held at once.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from typing import cast

import httptools

_FILL = b"x" * 65536


class StubState:
    def __init__(self, name: str, delay_ms: float = 0.0, status: int = 200) -> None:
        self.name = name
        self.delay_ms = delay_ms
        self.status = status
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers_seen: list[dict[str, str]] = []


class StubProtocol(asyncio.Protocol):
    def __init__(self, state: StubState) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._headers: dict[str, str] = {}
        self._url = b""
        self._hash = hashlib.sha256()
        self._size = 0
        self._hashing = False
        self._paused = False
        self._answered = False  # answered early: the rest of this message is read and dropped

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    _drained: asyncio.Future[None] | None = None

    def on_message_begin(self) -> None:
        self._headers, self._url, self._size = {}, b"", 0
        self._answered = False
        self._hash = hashlib.sha256()
        self.state.requests += 1
        self.state.in_flight += 1
        self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode(errors="replace")

    def on_headers_complete(self) -> None:
        # Hash only when asked: the benchmark wants the cheapest possible scorer.
        self._hashing = "x-stub-hash" in self._headers or "x-stub-bytes" in self._headers
        if "x-stub-early" in self._headers:
            self._answered = True
            self.state.in_flight -= 1
            status = int(self._headers.get("x-stub-status", self.state.status))
            self._write(status, b'{"name":"%s","early":true}' % self.state.name.encode(), True)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._hashing:
            self._hash.update(body)

    def on_message_complete(self) -> None:
        if self._answered:
            return
        headers = self._headers
        if len(self.state.headers_seen) < 100:
            self.state.headers_seen.append(headers)
        keep_alive = self.parser.should_keep_alive()
        if self._url == b"/stats":
            self.state.requests -= 1
            self.state.in_flight -= 1
            self._write(
                200,
                json.dumps(
                    {
                        "name": self.state.name,
                        "requests": self.state.requests,
                        "max_in_flight": self.state.max_in_flight,
                        "in_flight": self.state.in_flight,
                        "headers_seen": self.state.headers_seen[-10:],
                    }
                ).encode(),
                keep_alive,
            )
            return
        delay = float(headers.get("x-stub-delay-ms", self.state.delay_ms)) / 1000.0
        status = int(headers.get("x-stub-status", self.state.status))
        size = int(headers.get("x-stub-bytes", -1))
        digest = self._hash.hexdigest().encode() if self._hashing else b""
        body = b'{"name":"%s","received":%d,"sha256":"%s"}' % (self.state.name.encode(), self._size, digest)
        if delay <= 0 and size < 0:
            self.state.in_flight -= 1
            self._write(status, body, keep_alive)
        else:
            asyncio.get_running_loop().create_task(self._answer_later(delay, status, body, size, keep_alive))

    async def _answer_later(
        self, delay: float, status: int, body: bytes, size: int, keep_alive: bool
    ) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            if size < 0:
                self._write(status, body, keep_alive)
                return
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 %d X\r\ncontent-type: application/octet-stream\r\n"
                b"content-length: %d\r\nx-stub-name: %s\r\n\r\n" % (status, size, self.state.name.encode())
            )
            left = size
            while left > 0 and not self.transport.is_closing():
                piece = _FILL[: min(left, len(_FILL))]
                self.transport.write(piece)
                left -= len(piece)
                if self._paused:
                    self._drained = asyncio.get_running_loop().create_future()
                    await self._drained
            if not keep_alive:
                self.transport.close()
        finally:
            self.state.in_flight -= 1

    def _write(self, status: int, body: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-stub-name: %s\r\n\r\n%s" % (status, len(body), self.state.name.encode(), body)
        )
        if not keep_alive:
            self.transport.close()


async def start_stub(host: str, port: int, state: StubState) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: StubProtocol(state), host, port, backlog=1024, reuse_address=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router.stubserver", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:5001", metavar="HOST:PORT")
    parser.add_argument("--name", default="stub")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")

    async def serve() -> None:
        server = await start_stub(host, int(port), StubState(args.name, args.delay_ms, args.status))
        print(f"stub {args.name} listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    try:
        import uvloop

        uvloop.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
