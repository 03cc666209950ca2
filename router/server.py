"""The client-facing HTTP/1.1 server: an asyncio Protocol over httptools' C parser.

Why not aiohttp's server: measured on the 2-core dev box with the same stub scorer and the same split
and key check (`python bench/router.py --candidates`), aiohttp's low-level server with a ClientSession
proxied 6,800 requests/s per core where this protocol plus `router.upstream` did 18,000 (uvloop for
both); the difference is per-request objects, streams and tasks in both of aiohttp's halves. The
router's job is to move bytes between two sockets with a few dict lookups in between, so the
transport callbacks hand bodies straight from one socket to the other (with pause/resume for
backpressure) and no request body or answer is ever held whole in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

import httptools
import orjson

from router.wire import CONTINUE, CRLF, LAST_CHUNK, Headers, head, status_line, write_piece

log = logging.getLogger("inferplane.router")

# Request bytes held before the client is told to wait (pause_reading): the queue wait can be long,
# and a 100 MB upload must not sit in memory while its request waits for a pod.
BODY_HIGH_WATER = 256 * 1024
# Bodies up to this size are kept while they pass, for a retry on a fresh connection (and for a mirror
# copy, up to the router's --mirror-max-body-bytes when that is larger).
RETAIN_LIMIT = 1024 * 1024
# An answer given before the request body has all arrived (401, 404, 503, a pod's early 413...) leaves the
# rest of the body on its way. Up to this much is read and dropped so the connection stays usable, as Go's
# net/http does with 256 KiB; a larger rest, a chunked one (its size unknown) or one the client holds back
# for a `100 Continue` it never got is answered with `Connection: close` instead.
DRAIN_LIMIT = 256 * 1024
# A client that stops sending the rest of such a body for this long has its connection closed.
DRAIN_SECONDS = 10.0
# After `Connection: close` the router keeps reading and dropping what still comes: closing a socket with
# unread bytes makes the kernel send a reset, which can destroy the answer before the client has read it.
# It closes when the client does, after LINGER_IDLE_SECONDS of silence, or LINGER_SECONDS in all (nginx's
# lingering_close, with its 5 s / 30 s made shorter for the idle part: the client was told to go).
LINGER_IDLE_SECONDS = 2.0
LINGER_SECONDS = 30.0


class BodySink(Protocol):
    def send_body(self, data: bytes) -> None: ...
    def end_body(self) -> None: ...


class _Discard:
    """Where the rest of a body goes once its answer has been sent: nowhere."""

    def send_body(self, data: bytes) -> None:
        pass

    def end_body(self) -> None:
        pass


DISCARD = _Discard()


class Body:
    """A request body on its way through: buffered (bounded) until a sink is attached, then piped.

    Up to `retain_limit` bytes can be kept as they pass, so the same body can be replayed on a
    fresh upstream connection or copied to a mirror deployment; past that the copy is dropped.
    """

    __slots__ = (
        "_buffer",
        "_buffered",
        "_conn",
        "_done",
        "_limit",
        "_sink",
        "complete",
        "completed_at",
        "retained",
        "size",
    )

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn
        self._sink: BodySink | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._done: list[asyncio.Future[None]] = []
        self.complete = False
        self.completed_at = 0.0
        self.size = 0
        self.retained: list[bytes] | None = None
        self._limit = RETAIN_LIMIT

    def retain(self, expected: int | None, limit: int = RETAIN_LIMIT) -> None:
        """Keep a copy of up to `limit` bytes as the body passes (call before `attach`), unless it is
        known to be bigger; a body that grows past the limit drops its copy."""
        self._limit = limit
        if self._sink is None and self.size <= limit and (expected or 0) <= limit:
            self.retained = list(self._buffer)

    def replay(self) -> bytes | None:
        """The whole body if it was kept and has fully arrived."""
        return b"".join(self.retained) if self.complete and self.retained is not None else None

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.retained is not None:
            if self.size <= self._limit:
                self.retained.append(data)
            else:
                self.retained = None
        if self._sink is not None:
            self._sink.send_body(data)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_HIGH_WATER:
            self._conn.pause_reading("body")

    def finish(self) -> None:
        self.complete = True
        self.completed_at = time.monotonic()
        if self._sink is not None:
            self._sink.end_body()
        for waiter in self._done:
            if not waiter.done():
                waiter.set_result(None)
        self._done.clear()

    def attach(self, sink: BodySink) -> None:
        """Send what has arrived to `sink` and everything after it as it comes."""
        self._sink = sink
        buffer, self._buffer, self._buffered = self._buffer, [], 0
        for data in buffer:
            sink.send_body(data)
        if self.complete:
            sink.end_body()
        else:
            self._conn.resume_reading("body")

    def detach(self) -> None:
        self._sink = None

    def abandon(self) -> None:
        """The client left before sending it all: nobody should wait for the rest."""
        for waiter in self._done:
            waiter.cancel()
        self._done.clear()

    def wait_complete(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.complete:
            waiter.set_result(None)
        else:
            self._done.append(waiter)
        return waiter


class Request:
    __slots__ = (
        "body",
        "content_length",
        "continued",
        "expect_continue",
        "headers",
        "index",
        "keep_alive",
        "method",
        "url",
    )

    def __init__(self, method: bytes, url: bytes, headers: Headers, keep_alive: bool, body: Body) -> None:
        self.method = method
        self.url = url
        self.headers = headers  # in order, for forwarding
        # By name, the first of repeated ones: one dict built in C beats the half-dozen scans of the
        # list a request needs (key, namespace, pins, request id, framing).
        self.index = dict(reversed(headers))
        self.keep_alive = keep_alive
        self.body = body
        self.content_length: int | None = None
        self.expect_continue = False
        self.continued = False  # `100 Continue` was sent

    def header(self, name: bytes) -> bytes | None:
        return self.index.get(name)


Handler = Callable[[Request, "ClientConnection"], Awaitable[None]]


class Exchange:
    """Runs one request's handler coroutine: started at once, resumed by the futures it awaits.

    This is what asyncio.Task does for it, less what the router never uses (a result, callbacks, a
    context copy, registration in `asyncio.all_tasks`). Measured under uvloop on Python 3.11, creating
    and starting a Task costs about 5 us, a sixth of the router's whole Python cost per request at the
    time, and it starts one loop iteration later; driving the coroutine directly costs 0.2 us. (Python
    3.12's `eager_task_factory` does the same natively.) Cancelling cancels the awaited future, as
    Task.cancel does, so the coroutine meets CancelledError where it waits and its `finally` blocks
    give back what it holds. Nothing the handler awaits may need `asyncio.current_task()`.
    """

    __slots__ = ("_coro", "_must_cancel", "_waiting", "done")

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self._coro = coro
        self._waiting: asyncio.Future[Any] | None = None
        self._must_cancel = False
        self.done = False

    def step(self, _: object = None) -> None:
        """Run the coroutine until it waits or ends (also the awaited future's done callback)."""
        self._waiting = None
        try:
            if self._must_cancel:
                self._must_cancel = False
                awaited = self._coro.throw(asyncio.CancelledError())
            else:
                awaited = self._coro.send(None)
        except (StopIteration, asyncio.CancelledError):
            self.done = True
            return
        except BaseException:
            self.done = True
            raise  # the handler logs its own errors; what reaches here is KeyboardInterrupt and the like
        if awaited is None:  # a bare yield, as in asyncio.sleep(0): go on at the next turn
            asyncio.get_running_loop().call_soon(self.step)
            return
        awaited._asyncio_future_blocking = False
        self._waiting = awaited
        awaited.add_done_callback(self.step)

    def cancel(self) -> None:
        if self.done:
            return
        if self._waiting is not None and self._waiting.cancel():
            return  # its done callback steps the coroutine into the CancelledError
        self._must_cancel = True  # not started yet, or a step is already scheduled: it throws


class ClientConnection(asyncio.Protocol):
    """One client socket: parses requests, runs the handler for each in order, writes its answer."""

    def __init__(self, handler: Handler, on_close: Callable[[ClientConnection], None] | None = None) -> None:
        self._handler = handler
        self._on_close = on_close
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: Headers = []
        self._parsing: Request | None = None
        self._pending: deque[Request] = deque()
        self._task: Exchange | None = None
        self._feeding = False  # inside the parser: a request's handler starts once the parser returns
        self._starting: Exchange | None = None
        self._paused_for: set[str] = set()
        self._current: Request | None = None  # the request being answered
        self._chunked_out = False
        self._rejection: bytes | None = None  # a 400 for a malformed request, sent once its turn comes
        self._lingering = False  # told the client to close; what it still sends is dropped
        self._timer: asyncio.TimerHandle | None = None  # drain or linger deadline
        self._last_read = 0.0
        self._linger_until = 0.0
        self.response_started = False
        self.response_done = False
        self.keep_alive = True
        self.closed = False
        # The upstream connection whose answer is being relayed, paused when this client is slow.
        self.source: asyncio.Transport | None = None
        self.writing_paused = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports only quack like one

    def data_received(self, data: bytes) -> None:
        if self._lingering or self._rejection is not None:
            self._last_read = time.monotonic()
            return
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._reject(400, f"malformed HTTP request: {exc}")
        finally:
            self._feeding = False
        # Started after the parser has taken all of `data`, so a body that came with the head is there.
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.step()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._parsing is not None:
            self._parsing.body.abandon()
        if self._task is not None:
            self._task.cancel()
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.source is not None:
            self.source.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.source is not None:
            self.source.resume_reading()

    # -- httptools callbacks ---------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        request = Request(
            parser.get_method(), self._url, self._headers, parser.should_keep_alive(), Body(self)
        )
        index = request.index
        if b"content-length" in index:
            request.content_length = int(index[b"content-length"])
        if b"expect" in index:
            request.expect_continue = index[b"expect"].lower() == b"100-continue"
        self._parsing = request
        if self._task is None:
            self._start(request)
        else:
            self._pending.append(request)
            self.pause_reading("pipeline")

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing.body.feed(body)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.body.finish()
            if self._parsing is self._current and self._task is None:  # a drained body: next request
                self._parsing = None
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._next()
                return
            self._parsing = None

    # -- request lifecycle ---------------------------------------------------------------------------
    def _start(self, request: Request) -> None:
        self._current = request
        self.response_started = False
        self.response_done = False
        self._chunked_out = False
        self.keep_alive = request.keep_alive
        self._task = Exchange(self._run(request))
        if self._feeding:
            self._starting = self._task  # `data_received` starts it once the parser returns
        else:  # the next pipelined request, from the end of the one before: not nested inside it
            asyncio.get_running_loop().call_soon(self._task.step)

    async def _run(self, request: Request) -> None:
        try:
            await self._handler(request, self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("router: unhandled error")
            if not self.response_started:
                self.respond(500, b'{"error":{"status":500,"message":"internal error in the router"}}')
        if not self.response_done:
            self.close()
        self._task = None
        self.source = None
        if self.closed:
            return
        if not self.keep_alive:
            self._linger()
        elif not request.body.complete:
            # Answered early, with keep-alive because the rest is small (`_keeps_alive`): read and drop
            # it, and the next request follows it (`on_message_complete`).
            request.body.attach(DISCARD)
            self._timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, self.close)
        elif self._rejection is not None and not self._pending:  # a later request was malformed
            self._write_rejection()
        else:
            self._next()

    def _next(self) -> None:
        """The current exchange is over: start the next pipelined request, or read for one."""
        if self._pending:
            self._start(self._pending.popleft())
            if not self._pending:
                self.resume_reading("pipeline")
        else:
            self.resume_reading("pipeline")

    def _keeps_alive(self) -> bool:
        """Whether this connection can carry another request after the answer whose head goes out now.

        An answer may go out before the request body has all arrived (a refused key, a full queue, a
        pod that answers early). The connection then stays usable only if the rest can be read and
        dropped cheaply; otherwise the head says `Connection: close` and the router lingers
        (`_linger`), so the client learns it must reconnect instead of meeting a reset.
        """
        request = self._current
        if not self.keep_alive or request is None or request.body.complete:
            return self.keep_alive
        if request.expect_continue and not request.continued and not request.body.size:
            return False  # the client may never send the body it was waiting to be asked for
        if request.content_length is None:
            return False  # chunked: how much is left is unknown
        return request.content_length - request.body.size <= DRAIN_LIMIT

    def pause_reading(self, reason: str) -> None:
        if self._lingering:
            return  # reading on is the point: what arrives is dropped
        if not self._paused_for and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused_for.add(reason)

    def pause_reading_for_upstream(self, paused: bool) -> None:
        """The pod reads the body slower than the client sends it: hold the client back."""
        if paused:
            self.pause_reading("upstream")
        else:
            self.resume_reading("upstream")

    def resume_reading(self, reason: str) -> None:
        if reason in self._paused_for:
            self._paused_for.discard(reason)
            if not self._paused_for and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- writing the answer ------------------------------------------------------------------------------
    def send_continue(self, request: Request) -> None:
        if request.expect_continue and self.transport is not None and not request.body.size:
            self.transport.write(CONTINUE)
            request.continued = True

    def start(self, parts: list[bytes], length: int | None, body: bytes = b"") -> None:
        """Write an answer's head, given in pieces (status line, then `name: value\\r\\n` lines) that this
        completes with the framing and connection headers, and `body` when it is all here: one write,
        so head and body leave in one segment. `length` None means a chunked body follows."""
        self.response_started = True
        self.keep_alive = self._keeps_alive()
        if length is None:
            self._chunked_out = True
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            parts.append(b"content-length: %d\r\n" % length)
        parts.append(CRLF if self.keep_alive else b"connection: close\r\n\r\n")
        if body:
            parts.append(body)
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(parts))

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed and data:
            write_piece(self.transport, data, self._chunked_out)

    def finish(self) -> None:
        if self._chunked_out and self.transport is not None and not self.closed:
            self.transport.write(LAST_CHUNK)
        self.response_done = True

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: Headers | None = None,
    ) -> None:
        """A whole answer in one write: errors, health, metrics."""
        if self.response_started:
            self.close()  # too late for a status: the only honest signal left is a cut connection
            return
        self.response_started = True
        self.keep_alive = self._keeps_alive()
        fields: Headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if headers:
            fields += headers
        if not self.keep_alive:
            fields.append((b"connection", b"close"))
        if self.transport is not None and not self.closed:
            self.transport.write(head(status_line(status), fields) + body)
        self.response_done = True

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _linger(self) -> None:
        """Close after an answer that said `Connection: close`, without resetting the connection.

        The write side is shut once the answer is flushed (TCP; TLS cannot half-close), and whatever
        the client still sends is read and dropped until it closes, goes quiet, or the time is up.
        """
        transport = self.transport
        if transport is None or self.closed or self._lingering or transport.is_closing():
            return
        self._lingering = True
        self.keep_alive = False
        self._paused_for.clear()
        transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        now = time.monotonic()
        self._last_read, self._linger_until = now, now + LINGER_SECONDS
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(LINGER_IDLE_SECONDS, self._linger_check)

    def _linger_check(self) -> None:
        now = time.monotonic()
        due = min(self._last_read + LINGER_IDLE_SECONDS, self._linger_until)
        if now >= due - 0.001:
            self.close()
        else:
            self._timer = asyncio.get_running_loop().call_later(due - now, self._linger_check)

    def _reject(self, status: int, message: str) -> None:
        """A request the parser cannot read: 400 with `Connection: close`, in its turn.

        The parser cannot go on past the error, so the connection ends after this answer. A request
        still being answered keeps its answer, which goes first, unless the broken bytes are its own
        body: then it is cut off and the 400 goes out if its answer had not begun.
        """
        body = orjson.dumps({"error": {"status": status, "message": message}})
        self._rejection = (
            head(
                status_line(status),
                [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    (b"connection", b"close"),
                ],
            )
            + body
        )
        if self._parsing is not None and self._parsing is self._current:  # its own body is broken
            if self._task is not None:
                self._task.cancel()
                self._task = None
            if self.response_done:
                self._linger()  # answered already (its body was being drained): nothing more to say
                return
            if self.response_started:
                self.close()
                return
        if self._task is None:
            self._write_rejection()

    def _write_rejection(self) -> None:
        if self.transport is not None and not self.closed and self._rejection is not None:
            self.transport.write(self._rejection)
        self._linger()
