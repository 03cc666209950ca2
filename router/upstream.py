"""Keep-alive connections to scoring pods, and one exchange over them.

A small client of our own rather than aiohttp's ClientSession: the proxy needs the response head as
soon as it arrives and then wants the body bytes handed straight to the client socket from the
transport callback, with the two sockets pausing each other when one side is slow. ClientSession
would put a StreamReader, a task and a copy in between, and it costs several times more CPU per
request (see `router.server`). The timeout is one loop timer per exchange that re-arms itself while
bytes keep coming, so a slow scorer gets 504 on time and a long answer that keeps streaming is not cut.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

import httptools

from router.wire import LAST_CHUNK, Headers, chunk, write_piece

# Idle keep-alive connections kept per pod; beyond this a finished connection is closed.
IDLE_PER_POD = 128


class UpstreamError(Exception):
    """The pod could not be reached, or broke off its answer."""


class UpstreamTimeout(Exception):
    """The pod did not answer within the deployment's request timeout."""


class Sink:
    """Where a response body goes: the client connection (or nothing, for a mirror copy)."""

    transport: asyncio.Transport | None = None
    source: asyncio.Transport | None = None
    writing_paused = False

    def send(self, data: bytes) -> None:
        pass


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, address: tuple[str, int], on_lost: Callable[[UpstreamConnection], None]) -> None:
        self.address = address
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._chunked_body = False
        self._early: list[bytes] = []
        self._sink: Sink | None = None
        self._pause_source: Callable[[bool], None] | None = None
        self.head: asyncio.Future[None] | None = None
        self.done: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: Headers = []
        self.length: int | None = None
        self.received = 0  # bytes of the current answer seen so far (head included)
        self.complete = False
        self.keep_alive = False
        self.sent_all = False  # the whole request body went out (a pod may answer before reading it)
        self.lost = False
        self.idle_since = 0.0
        self.last_activity = 0.0

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports only quack like one
        # Looked up once: on Python 3.11 every get_running_loop() checks the pid, a getpid() system
        # call (2 of the 6.5 system calls per proxied request before this).
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.last_activity = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the pod sent a malformed HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if (
            self.head is not None
            and self.head.done()
            and not self.complete
            and self.length is None
            and not self._chunked_answer()
        ):
            self._message_done(keep_alive=False)  # an answer delimited by closing the connection
        else:
            self._fail(UpstreamError("the pod closed the connection" + (f" ({exc})" if exc else "")))
        self._on_lost(self)

    def pause_writing(self) -> None:
        if self._pause_source is not None:
            self._pause_source(True)

    def resume_writing(self) -> None:
        if self._pause_source is not None:
            self._pause_source(False)

    # -- httptools callbacks ---------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.length = int(value)
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.send(data)
        else:
            self._early.append(data)

    def on_message_complete(self) -> None:
        self._message_done(self._parser.should_keep_alive())

    # -- one exchange ----------------------------------------------------------------------------------
    def begin(
        self,
        request_head: bytes,
        chunked_body: bool,
        pause_source: Callable[[bool], None] | None = None,
        body: bytes | None = None,
    ) -> None:
        """Send a request head, and the whole `body` with it when it is already here (one syscall);
        otherwise the body follows through `send_body`/`end_body`."""
        loop = self.loop
        assert loop is not None, "begin() before connection_made()"
        self.head = loop.create_future()
        self.done = loop.create_future()
        self.status, self.headers, self.length, self.received = 0, [], None, 0
        self.complete = self.keep_alive = False
        self._early, self._sink = [], None
        self._chunked_body = chunked_body
        self._pause_source = pause_source
        self.sent_all = body is not None
        self.last_activity = time.monotonic()
        assert self.transport is not None
        if body is None:
            self.transport.write(request_head)
        elif chunked_body:
            self.transport.writelines(
                [request_head, *chunk(body), LAST_CHUNK] if body else [request_head, LAST_CHUNK]
            )
        else:
            self.transport.writelines([request_head, body])

    def send_body(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            write_piece(self.transport, data, self._chunked_body)

    def end_body(self) -> None:
        self.sent_all = True
        if self._chunked_body and self.transport is not None and not self.lost:
            self.transport.write(LAST_CHUNK)

    def relay(self, sink: Sink) -> None:
        """Pass the answer's body to `sink` from now on, with the sink's backpressure pausing us."""
        self._sink = sink
        sink.source = self.transport
        early, self._early = self._early, []
        for data in early:
            sink.send(data)
        if sink.writing_paused and self.transport is not None:
            self.transport.pause_reading()

    def take_early(self) -> bytes:
        """The body bytes that arrived before anyone relayed them (all of it, once `complete`)."""
        early, self._early = self._early, []
        return b"".join(early)

    def time_out(self) -> None:
        self._fail(UpstreamTimeout())

    @property
    def reusable(self) -> bool:
        """Whether another request may follow on this connection: not if the pod answered before our
        body was all sent, as the pod's parser would read the next request as the rest of that body."""
        return self.complete and self.keep_alive and self.sent_all and not self.lost

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def _chunked_answer(self) -> bool:
        return any(n == b"transfer-encoding" and b"chunked" in v.lower() for n, v in self.headers)

    def _message_done(self, keep_alive: bool) -> None:
        self.complete = True
        self.keep_alive = keep_alive
        self._pause_source = None
        if self.head is not None and not self.head.done():
            self.head.set_result(None)
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: Exception) -> None:
        """Wake whoever waits: the head if it has not come, else the end of the body."""
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
            if self.done is not None:
                self.done.cancel()  # nobody will wait for the body of an answer that never began
        elif self.done is not None and not self.done.done():
            self.done.set_exception(exc)


class UpstreamPool:
    """Idle keep-alive connections per pod address, most recently used first."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}

    def take_idle(self, address: tuple[str, int]) -> UpstreamConnection | None:
        """A kept-alive connection to `address`, if there is one: the usual case, with no coroutine."""
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if not conn.lost:
                return conn
        return None

    async def connect(self, address: tuple[str, int]) -> tuple[UpstreamConnection, bool]:
        """A connection to `address` and whether it was reused (a reused one may have gone stale)."""
        conn = self.take_idle(address)
        if conn is not None:
            return conn, True
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: UpstreamConnection(address, self._forget), *address
            )
        except OSError as exc:
            raise UpstreamError(
                f"could not connect to {address[0]}:{address[1]}: {exc.strerror or exc}"
            ) from None
        return conn, False

    def put(self, conn: UpstreamConnection) -> None:
        if conn.reusable:
            idle = self._idle.setdefault(conn.address, [])
            if len(idle) < IDLE_PER_POD:
                assert conn.transport is not None
                if not conn.transport.is_reading():
                    conn.transport.resume_reading()  # it was paused for a slow client
                conn.idle_since = time.monotonic()
                conn.head = conn.done = None
                conn._sink = None
                idle.append(conn)
                return
        conn.close()

    def _forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)

    def prune(self, max_idle_s: float, keep: set[tuple[str, int]] | None = None) -> None:
        """Close connections idle too long, and all of those to pods no longer routed to."""
        cutoff = time.monotonic() - max_idle_s
        for address, idle in list(self._idle.items()):
            gone = keep is not None and address not in keep
            for conn in [c for c in idle if gone or c.idle_since < cutoff]:
                idle.remove(conn)
                conn.close()
            if not idle:
                del self._idle[address]

    def close(self) -> None:
        self.prune(-1.0, set())
